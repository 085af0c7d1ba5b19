#!/bin/sh
# A full-size zoo model's weights as torch.save writes them: random weights from
# tests/fixtures/torch_reference.py (PyTorch computes the reference output), saved by
# make_pth_fixtures.py --from-safetensors in the zip and legacy formats (the published DiracNet
# weights are legacy), wrapped with 'module.' prefixes, and in fp16. foldc run on each must give
# the safetensors run's output bit for bit (fp16: the fp16-rounded weights' output), within 1e-4 of
# PyTorch's. Usage: pth_full.sh MODEL
. "$(dirname "$0")/lib.sh"
model=$1
/usr/bin/python3 "$FIXTURES/torch_reference.py" "$model" "$SCRATCH" > /dev/null
/usr/bin/python3 "$FIXTURES/make_pth_fixtures.py" --from-safetensors "$SCRATCH/$model.safetensors" "$SCRATCH/w"
run() { # run WEIGHTS OUT
  "$FOLDC" run "$model" --weights "$1" --input "$SCRATCH/$model.input.npy" --output "$2" 2> "$SCRATCH/err" \
    || fail "foldc run with $1: $(cat "$SCRATCH/err")"
}
run "$SCRATCH/$model.safetensors" "$SCRATCH/ref.npy"
for f in zip legacy wrapped_legacy; do
  run "$SCRATCH/w/$f.pth" "$SCRATCH/$f.npy"
  cmp -s "$SCRATCH/ref.npy" "$SCRATCH/$f.npy" || fail "$model $f.pth: output differs from the safetensors run"
  luajit "$FIXTURES/check_output.lua" "$SCRATCH/$f.npy" "$SCRATCH/$model.output.npy" 1e-4 || fail "$model $f.pth vs PyTorch"
  echo "ok: $model $f.pth: same output as safetensors, bit for bit"
done
run "$SCRATCH/w/fp16.pth" "$SCRATCH/fp16.npy"
run "$SCRATCH/w/fp16_as_f32.safetensors" "$SCRATCH/fp16_as_f32.npy"
cmp -s "$SCRATCH/fp16.npy" "$SCRATCH/fp16_as_f32.npy" || fail "$model fp16.pth: output differs from the fp16-rounded run"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/fp16.npy" "$SCRATCH/$model.output.npy" 2e-2 || fail "$model fp16.pth: beyond fp16 rounding"
echo "ok: $model fp16.pth: the fp16-rounded weights' output exactly"
