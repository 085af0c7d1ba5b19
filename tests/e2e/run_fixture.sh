#!/bin/sh
# One fixture end to end: foldc run (build, compile, run the bundle) against PyTorch's output,
# within 1e-4 of the output's largest magnitude.
# Usage: run_fixture.sh FIXTURE [TARGET] (TARGET: foldc's --target, default host).
. "$(dirname "$0")/lib.sh"
name=$1
target=${2:-host}
data="$FIXTURES/data/$name"
desc=$(fixture_description "$name")
"$FOLDC" run "$desc:$name" --weights "$data.safetensors" \
  --input "$data.input.npy" --output "$SCRATCH/out.npy" --target "$target"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data.output.npy" 1e-4
