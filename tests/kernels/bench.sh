#!/bin/sh
# Full kernel benchmark (not run by CI): ResNet-50 layer shapes etc.
#   bench.sh [FOLDC_GEN] [WORKDIR]     (defaults: build/compiler/halide/foldc_gen, /tmp/foldc_kbench)
# Runs every case single-threaded, then with 2 threads (override with
# BENCH_THREADS="1 2 4").  Extra kernel_test args can go in BENCH_ARGS
# (e.g. a name filter).
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
GEN=${1:-$HERE/../../build/compiler/halide/foldc_gen}
WORK=${2:-/tmp/foldc_kbench}
for t in ${BENCH_THREADS:-1 2}; do
    # shellcheck disable=SC2086
    sh "$HERE/run.sh" "$GEN" "$WORK" "$HERE/cases_bench.txt" -b -t "$t" ${BENCH_ARGS:-}
done
