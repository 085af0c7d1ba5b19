#!/bin/sh
# Winograd convolution end to end: fixtures whose 3x3 stride-1 convs all run as F(2x2), F(4x4)
# and F(6x6) (FOLDC_CONV_ALGO forces it wherever it is legal: maps of 1x1 to 8x8, so partial and
# single edge tiles), against PyTorch within 1e-4; the bundle must use the Winograd weights.
. "$(dirname "$0")/lib.sh"
for algo in winograd2 winograd4 winograd6; do
  for name in resnet18_w8 diracnet18_w8 conv_k3_p1_16to24_nobias diracnet34_w4; do
    data="$FIXTURES/data/$name"
    rm -rf "$SCRATCH/b"
    FOLDC_CONV_ALGO=$algo "$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$data.safetensors" \
      -o "$SCRATCH/b" 2> "$SCRATCH/err" || fail "$algo $name: build: $(cat "$SCRATCH/err")"
    grep -q "@$algo" "$SCRATCH/b/$name.json" || fail "$algo $name: no Winograd layer in the bundle"
    FOLDC_CONV_ALGO=$algo "$FOLDC" run "$FIXTURES/fixtures.lua:$name" --weights "$data.safetensors" \
      --input "$data.input.npy" --output "$SCRATCH/out.npy" 2> "$SCRATCH/err" || fail "$algo $name: run: $(cat "$SCRATCH/err")"
    luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data.output.npy" 1e-4 || fail "$algo $name"
  done
done
echo "ok: Winograd F(2x2), F(4x4), F(6x6) fixtures match PyTorch"
