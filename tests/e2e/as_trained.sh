#!/bin/sh
# A model as a user trained it (tests/fixtures/as_trained.py: other classes, resolution or position
# grid), from a torch.save checkpoint: `foldc run MODEL --weights CASE.pth --input CASE.input.npy`
# with nothing else on the command line matches the original code within 1e-4.
# Usage: as_trained.sh CASE
. "$(dirname "$0")/lib.sh"
case=$1
model=$(/usr/bin/python3 "$FIXTURES/as_trained.py" "$case" "$SCRATCH") || fail "as_trained.py $case"
"$FOLDC" run "$model" --weights "$SCRATCH/$case.pth" --input "$SCRATCH/$case.input.npy" \
  --output "$SCRATCH/out.npy" 2> "$SCRATCH/err" || fail "foldc run $model: $(cat "$SCRATCH/err")"
cat "$SCRATCH/err" | grep -v compiling >&2
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$SCRATCH/$case.output.npy" 1e-4
