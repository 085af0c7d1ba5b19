#!/bin/sh
# One fixture end to end: foldc run (build, compile, run the bundle) against PyTorch's output,
# within 1e-4 of the output's largest magnitude.
. "$(dirname "$0")/lib.sh"
name=$1
data="$FIXTURES/data/$name"
"$FOLDC" run "$FIXTURES/fixtures.lua:$name" --weights "$data.safetensors" \
  --input "$data.input.npy" --output "$SCRATCH/out.npy"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data.output.npy" 1e-4
