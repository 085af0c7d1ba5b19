#!/bin/sh
# Every config of lowering_cases.lua, built and run, agrees with the reference interpreter.
. "$(dirname "$0")/lib.sh"
cases="$FOLDC_ROOT/tests/e2e/lowering_cases.lua"
for name in unfused_relu unfused_add_relu flatten_spatial bn_affine_output; do
  "$FOLDC" check "$cases:$name" --weights random:3 2> "$SCRATCH/err" || fail "$name: $(cat "$SCRATCH/err")"
done
