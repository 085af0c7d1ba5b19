#!/bin/sh
# A full-size zoo model against the original PyTorch implementation: random weights with random
# BatchNorm statistics (tests/fixtures/torch_reference.py), foldc run, within 1e-4 of the largest
# output magnitude. Usage: full_model.sh MODEL [TARGET] [SIZE] (TARGET: foldc's --target, default
# host; opencl runs on pocl; SIZE: the input's height and width, default the model's).
. "$(dirname "$0")/lib.sh"
model=$1
target=${2:-host}
size=${3:+--size $3}
[ "$target" != opencl ] || need_pocl
/usr/bin/python3 "$FIXTURES/torch_reference.py" "$model" "$SCRATCH" $size > /dev/null
"$FOLDC" run "$model" --weights "$SCRATCH/$model.safetensors" --input "$SCRATCH/$model.input.npy" \
  --output "$SCRATCH/out.npy" --target "$target" 2> /dev/null
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$SCRATCH/$model.output.npy" 1e-4
