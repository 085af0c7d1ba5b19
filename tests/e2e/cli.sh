#!/bin/sh
# The command line: --help on every verb, list, check, bench --json, and the exit codes.
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
echo "ok: CLI"
