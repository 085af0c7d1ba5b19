#!/bin/sh
# Shapes from the command line (issue 14), end to end: `foldc build --input 1x3x48x64` gives a bundle
# whose header macros and example program take that shape and match PyTorch; MODEL:key=value is
# checked against the weights (a match runs, a mismatch is one line); an unknown key and a bad value
# are one line each, with nothing written. Batch 4 (`--input 4x3x40x56`): the header's and example
# program's shapes hold the 4 images, the convolutions run batched (direct and Winograd) and match
# PyTorch; `foldc check` at batch 3 on a ViT; the batch-4 program refuses a batch-1 input in one line.
. "$(dirname "$0")/lib.sh"
desc="$FIXTURES/shapes.lua"

name=shapes_resnet_48x64
"$FOLDC" build "$desc:$name" --weights "$FIXTURES/data/$name.safetensors" --input 1x3x48x64 \
  -o "$SCRATCH/bundle" 2> "$SCRATCH/err" || fail "build --input: $(cat "$SCRATCH/err")"
grep -q 'num_classes = 10, from fc.weight' "$SCRATCH/err" || fail "build report: $(cat "$SCRATCH/err")"
grep -q "define SHAPES_RESNET_48X64_INPUT_H 48$" "$SCRATCH/bundle/$name.h" || fail "header: input height"
grep -q "define SHAPES_RESNET_48X64_INPUT_W 64$" "$SCRATCH/bundle/$name.h" || fail "header: input width"
make -s -C "$SCRATCH/bundle" > /dev/null || fail "make"
(cd "$SCRATCH/bundle" && "./${name}_main" --input "$FIXTURES/data/$name.input.npy" --output "$SCRATCH/out.npy") \
  > /dev/null || fail "example program"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$FIXTURES/data/$name.output.npy" 1e-4

name=shapes_resnet_b4
for algo in auto winograd4; do
  rm -rf "$SCRATCH/b4"
  FOLDC_CONV_ALGO=$algo "$FOLDC" build "$desc:$name" --weights "$FIXTURES/data/$name.safetensors" --input 4x3x40x56 \
    -o "$SCRATCH/b4" 2> "$SCRATCH/err" || fail "build --input 4x3x40x56 ($algo): $(cat "$SCRATCH/err")"
  grep -q "define SHAPES_RESNET_B4_INPUT_DIM0 4$" "$SCRATCH/b4/$name.h" || fail "header: input batch"
  grep -q "define SHAPES_RESNET_B4_OUTPUT_SIZE 40$" "$SCRATCH/b4/$name.h" || fail "header: output size"
  grep -q '"batch":4,' "$SCRATCH/b4/$name.json" || fail "no batched kernel ($algo)"
  if [ $algo = winograd4 ]; then grep -q '"algorithm":"winograd F(4x4)"' "$SCRATCH/b4/$name.json" || fail "no Winograd"; fi
  make -s -C "$SCRATCH/b4" > /dev/null || fail "make (batch 4)"
  (cd "$SCRATCH/b4" && "./${name}_main" --input "$FIXTURES/data/$name.input.npy" --output "$SCRATCH/out4.npy") \
    > /dev/null || fail "example program (batch 4, $algo)"
  luajit "$FIXTURES/check_output.lua" "$SCRATCH/out4.npy" "$FIXTURES/data/$name.output.npy" 1e-4
done
if (cd "$SCRATCH/b4" && "./${name}_main" --input "$FIXTURES/data/shapes_resnet_48x64.input.npy") 2> "$SCRATCH/err" > /dev/null; then
  fail "the batch-4 program took a batch-1 input"
fi
grep -q 'input shape 1x3x48x64, the model expects 4x3x40x56' "$SCRATCH/err" || fail "batch-1 input: $(cat "$SCRATCH/err")"
"$FOLDC" check "$desc:shapes_vit_grid6" --weights "$FIXTURES/data/shapes_vit_grid6.safetensors" --input 3x3x48x48 \
  > "$SCRATCH/check" 2> /dev/null || fail "check at batch 3: $(cat "$SCRATCH/check")"

name=shapes_repvgg_c7
"$FOLDC" run "$desc:$name:num_classes=7" --weights "$FIXTURES/data/$name.safetensors" \
  --input "$FIXTURES/data/$name.input.npy" --output "$SCRATCH/out7.npy" 2> /dev/null || fail "run :num_classes=7"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out7.npy" "$FIXTURES/data/$name.output.npy" 1e-4

# refuse: exit 1, one line on stderr containing $1, no bundle folder
refused() {
  want=$1
  shift
  if "$FOLDC" "$@" 2> "$SCRATCH/err"; then fail "accepted: $*"; fi
  [ "$(wc -l < "$SCRATCH/err")" -eq 1 ] || fail "not one line: $(cat "$SCRATCH/err")"
  grep -qF -- "$want" "$SCRATCH/err" || fail "$*: $(cat "$SCRATCH/err")"
  [ ! -e "$SCRATCH/refused" ] || fail "$*: wrote $SCRATCH/refused"
}
w="$FIXTURES/data/$name.safetensors"
refused 'the weights have num_classes = 7 (from linear.weight), the command line gives 100' \
  build "$desc:$name:num_classes=100" --weights "$w" -o "$SCRATCH/refused"
refused 'no setting "classes"' build "$desc:$name:classes=7" --weights "$w" -o "$SCRATCH/refused"
refused 'num_classes="7;ls": expected an integer' build "$desc:$name:num_classes=7;ls" --weights "$w" -o "$SCRATCH/refused"
refused '--input 1x3x32xq: expected NxCxHxW' build "$desc:$name" --weights "$w" --input 1x3x32xq -o "$SCRATCH/refused"
refused 'shape 1x3x32 has 3 dimensions' build "$desc:$name" --weights "$w" --input 1x3x32 -o "$SCRATCH/refused"
refused '--input 1x3x48x48 with --compare: only the batch may change (the PyTorch mirror takes Nx3x32x32)' bench "$desc:$name" --weights "$w" --compare --input 1x3x48x48
# a checkpoint refused after its num_classes was taken: still one line
refused 'does not match shapes_resnet_c10' build "$desc:shapes_resnet_c10" --weights "$FIXTURES/data/shapes_resnet_aux.safetensors" \
  -o "$SCRATCH/refused"
# a position grid other than the checkpoint's only with resample_pos_embed (shapes_vit_resample's config
# sets it; tests/fixtures/make_shape_fixtures.py checks the resampled model against timm's way)
name=shapes_vit_resample
w="$FIXTURES/data/$name.safetensors"
refused "$name:resample_pos_embed=bicubic takes it" build "$desc:$name:resample_pos_embed=none" --weights "$w" \
  --input 1x3x48x48 -o "$SCRATCH/refused"
refused 'resample_pos_embed=bilinear: expected none, bicubic or bicubic_antialias' build "$desc:$name:resample_pos_embed=bilinear" \
  --weights "$w" --input 1x3x48x48 -o "$SCRATCH/refused"
"$FOLDC" build "$desc:$name" --weights "$w" --input 1x3x48x48 -o "$SCRATCH/resampled" 2> "$SCRATCH/err" \
  || fail "build resampled: $(cat "$SCRATCH/err")"
grep -q 'pos_embed: 4x4 grid resampled to 6x6 (bicubic)' "$SCRATCH/err" || fail "resample report: $(cat "$SCRATCH/err")"
