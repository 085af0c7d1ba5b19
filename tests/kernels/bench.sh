#!/bin/sh
# Full kernel benchmark (not run by CI): ResNet-50 layer shapes etc.
#   bench.sh [FOLDC_GEN] [WORKDIR]     (defaults: build/compiler/halide/foldc_gen, /tmp/foldc_kbench)
# Runs every case single-threaded, then with 2 threads (override with
# BENCH_THREADS="1 2 4").  Extra kernel_test args can go in BENCH_ARGS
# (e.g. a name filter, or -u: the best single call by CPU time, on a loaded
# machine).  "% of peak" is of this machine's FMA peak, measured first by
# compiler/peak.c built for the host (BENCH_PEAK=GFLOPS sets it instead).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
GEN=${1:-$HERE/../../build/compiler/halide/foldc_gen}
WORK=${2:-/tmp/foldc_kbench}
mkdir -p "$WORK"
if [ -z "${BENCH_PEAK:-}" ]; then
    ${CC:-cc} -O2 -std=c99 -march=native -ffp-contract=fast "$HERE/../../compiler/peak.c" -o "$WORK/peak"
    BENCH_PEAK=$("$WORK/peak")
fi
for t in ${BENCH_THREADS:-1 2}; do
    # shellcheck disable=SC2086
    sh "$HERE/run.sh" "$GEN" "$WORK" "$HERE/cases_bench.txt" -b -t "$t" -p "$BENCH_PEAK" ${BENCH_ARGS:-}
done
