#!/bin/sh
# The command line: --help on every verb, list, check, bench --json and its % of peak, the exit codes.
. "$(dirname "$0")/lib.sh"
"$FOLDC" --help > /dev/null || fail "foldc --help"
for verb in list build run bench check; do
  "$FOLDC" $verb --help > /dev/null || fail "foldc $verb --help"
done
if "$FOLDC" frobnicate 2> "$SCRATCH/err"; then fail "unknown verb accepted"; fi
[ "$(wc -l < "$SCRATCH/err")" -eq 1 ] || fail "unknown verb: not one line"

"$FOLDC" list > "$SCRATCH/list"
grep -E '^resnet50 +ResNet +25\.56 M +4\.089 G' "$SCRATCH/list" > /dev/null || fail "list: resnet50 row: $(cat "$SCRATCH/list")"
grep -E '^diracnet18 +DiracNet +11\.51 M +1\.795 G' "$SCRATCH/list" > /dev/null || fail "list: diracnet18 row"

name=diracnet18_w8
"$FOLDC" check "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" > "$SCRATCH/check" 2> /dev/null \
  || fail "check: $(cat "$SCRATCH/check")"
grep -q 'within 1e-4' "$SCRATCH/check" || fail "check output: $(cat "$SCRATCH/check")"

"$FOLDC" bench "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" --runs 3 --json \
  > "$SCRATCH/bench" 2> /dev/null || fail "bench"
tail -n 1 "$SCRATCH/bench" | luajit -e '
  local j = require("cjson").decode(io.read("*a"))
  assert(j.min_ms > 0 and j.median_ms >= j.min_ms, "bad timings")
  assert(#j.layers > 0, "no layers")' || fail "bench --json: $(tail -n 1 "$SCRATCH/bench")"
# % of peak: of the FMA peak measured now (compiler/peak.c) on AVX2/AVX-512 hosts, or FOLDC_PEAK_GFLOPS
FOLDC_PEAK_GFLOPS=123 "$FOLDC" bench "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" \
  --runs 2 > "$SCRATCH/bench_env" 2> /dev/null || fail "bench with FOLDC_PEAK_GFLOPS"
grep -q '^% peak: of 123.0 GFLOP/s per core x 1 thread' "$SCRATCH/bench_env" || fail "bench: $(head -n 3 "$SCRATCH/bench_env")"
grep -q "% peak$" "$SCRATCH/bench_env" || fail "bench: no % peak column"
if grep -q '^flags.* avx2' /proc/cpuinfo; then
  "$FOLDC" bench "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" --runs 2 \
    > "$SCRATCH/bench_peak" 2> /dev/null || fail "bench"
  peak=$(sed -n 's/^% peak: of \([0-9.]*\) GFLOP.*measured now.*/\1/p' "$SCRATCH/bench_peak")
  luajit -e "local p = tonumber('$peak'); assert(p and p > 20 and p < 5000)" \
    || fail "bench: measured peak '$peak': $(head -n 3 "$SCRATCH/bench_peak")"
fi
echo "ok: CLI"
