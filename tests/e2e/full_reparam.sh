#!/bin/sh
# A full-size re-parameterised zoo model against the original PyTorch implementation and its own
# conversion (tests/fixtures/make_reparam_fixtures.py full): random training-time weights with
# random BatchNorm statistics; foldc run within 1e-4 of the largest output magnitude, and foldc fold
# equal to the reference conversion's deploy weights within 1e-5 relative per tensor, same keys; with
# `deploy`, the reference conversion's weights run as the deploy form within 1e-4 too.
# Usage: full_reparam.sh MODEL [deploy]
. "$(dirname "$0")/lib.sh"
model=$1
/usr/bin/python3 "$FIXTURES/make_reparam_fixtures.py" full "$model" "$SCRATCH"
"$FOLDC" run "$model" --weights "$SCRATCH/$model.safetensors" --input "$SCRATCH/$model.input.npy" \
  --output "$SCRATCH/out.npy" 2> /dev/null
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$SCRATCH/$model.output.npy" 1e-4
"$FOLDC" fold "$model" --weights "$SCRATCH/$model.safetensors" -o "$SCRATCH/folded.safetensors"
/usr/bin/python3 "$FIXTURES/make_reparam_fixtures.py" compare "$SCRATCH/folded.safetensors" \
  "$SCRATCH/$model.deploy.safetensors" --tol 1e-5
if [ "${2:-}" = deploy ]; then
  "$FOLDC" run "$model" --weights "$SCRATCH/$model.deploy.safetensors" --input "$SCRATCH/$model.input.npy" \
    --output "$SCRATCH/out_deploy.npy" 2> /dev/null
  luajit "$FIXTURES/check_output.lua" "$SCRATCH/out_deploy.npy" "$SCRATCH/$model.output.npy" 1e-4
fi
