#!/bin/sh
# libFuzzer on a bundle's create and run (fuzz_bundle.c): the input bytes are a weights blob, the
# seed corpus the fixture's real blob; the glue is built with ASan, UBSan and coverage (the Halide
# kernels are not instrumented). Any crash, sanitizer report, unexpected error code or 10 s input
# fails. Then the bundle built with the real weights still matches PyTorch. Exits 77 (skipped)
# when clang's fuzzer runtime (Debian libclang-rt-14-dev) is missing.
# Usage: fuzz_bundle.sh FIXTURE [RUNS [SECONDS]]
. "$(dirname "$0")/lib.sh"
name=${1:-residual_relu_8}
runs=${2:-20000}
seconds=${3:-30}
upper=$(echo "$name" | tr 'a-z' 'A-Z')
printf 'int LLVMFuzzerTestOneInput(const char *d, unsigned long n) { return d && n > 1 ? 0 : 0; }\n' > "$SCRATCH/probe.c"
if ! clang -fsanitize=fuzzer,address,undefined -o "$SCRATCH/probe" "$SCRATCH/probe.c" 2> "$SCRATCH/probe.err"; then
  echo "skip: clang cannot link a libFuzzer target (install libclang-rt-14-dev): $(head -1 "$SCRATCH/probe.err")"
  exit 77
fi
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" -o "$SCRATCH/bundle" 2> /dev/null
san="-O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
make -s -C "$SCRATCH/bundle" CC=clang CFLAGS="$san -fsanitize=fuzzer-no-link -Werror" "lib$name.a" ||
  fail "sanitizer build of the bundle"
clang $san -fsanitize=fuzzer -std=c99 -Wall -Wextra -Werror -DMODEL="$name" -DMODEL_UPPER="$upper" \
  -DMODEL_H="\"$name.h\"" -I "$SCRATCH/bundle" -I "$FOLDC_ROOT/tests/e2e" -o "$SCRATCH/fuzz" \
  "$FOLDC_ROOT/tests/e2e/fuzz_bundle.c" "$SCRATCH/bundle/lib$name.a" -lm -lpthread -ldl || fail "build of fuzz_bundle.c"
mkdir "$SCRATCH/corpus" "$SCRATCH/crashes"
cp "$SCRATCH/bundle/$name.weights" "$SCRATCH/corpus/real.weights"
FUZZ_REAL_WEIGHTS="$SCRATCH/bundle/$name.weights" ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  "$SCRATCH/fuzz" -seed=1 -runs="$runs" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$SCRATCH/crashes/" -print_final_stats=1 "$SCRATCH/corpus" > "$SCRATCH/fuzz.log" 2>&1 ||
  { tail -40 "$SCRATCH/fuzz.log"; fail "libFuzzer found a failing input (above)"; }
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$SCRATCH/fuzz.log")
[ -n "$execs" ] && [ "$execs" -gt 0 ] || { tail -20 "$SCRATCH/fuzz.log"; fail "libFuzzer ran no input"; }
make -s -C "$SCRATCH/bundle" clean
make -s -C "$SCRATCH/bundle"
"$SCRATCH/bundle/${name}_main" --weights "$SCRATCH/bundle/$name.weights" \
  --input "$FIXTURES/data/$name.input.npy" --output "$SCRATCH/out.npy" > /dev/null || fail "the real blob no longer runs"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$FIXTURES/data/$name.output.npy" 1e-4
echo "ok: $name: $execs blobs through create/run under libFuzzer (ASan+UBSan), no failure"
