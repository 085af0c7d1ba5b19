#!/bin/sh
# The same state_dict gives the same outputs whether it comes as safetensors or as what torch.save
# writes: resnet18_w8's fixture weights saved by PyTorch (tests/fixtures/make_pth_fixtures.py
# --from-safetensors) in the zip and legacy formats, wrapped as {'epoch', 'model': {'module.' + k}}
# in both, and in fp16. foldc run's outputs must be bitwise identical to the safetensors run (fp16:
# identical to the run on the fp16-rounded values, and within 1e-2 of PyTorch's fp32 output).
. "$(dirname "$0")/lib.sh"
name=resnet18_w8
model="$FIXTURES/fixtures.lua:$name"
data="$FIXTURES/data/$name"
/usr/bin/python3 "$FIXTURES/make_pth_fixtures.py" --from-safetensors "$data.safetensors" "$SCRATCH/w"

run() { # run WEIGHTS OUT
  "$FOLDC" run "$model" --weights "$1" --input "$data.input.npy" --output "$2" 2> "$SCRATCH/err" \
    || fail "foldc run with $1: $(cat "$SCRATCH/err")"
}
run "$data.safetensors" "$SCRATCH/ref.npy"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/ref.npy" "$data.output.npy" 1e-4 > /dev/null \
  || fail "safetensors run does not match PyTorch"
for f in zip legacy wrapped wrapped_legacy; do
  run "$SCRATCH/w/$f.pth" "$SCRATCH/$f.npy"
  cmp -s "$SCRATCH/ref.npy" "$SCRATCH/$f.npy" || fail "$f.pth: output differs from the safetensors run"
  case $f in
    wrapped*) grep -qF "using 'model' inside checkpoint; stripped 'module.' from 122 keys" "$SCRATCH/err" \
                || fail "$f.pth: no note on stderr: $(cat "$SCRATCH/err")" ;;
  esac
  echo "ok: $f.pth gives the same output as the safetensors file, bit for bit"
done
run "$SCRATCH/w/fp16.pth" "$SCRATCH/fp16.npy"
run "$SCRATCH/w/fp16_as_f32.safetensors" "$SCRATCH/fp16_as_f32.npy"
cmp -s "$SCRATCH/fp16.npy" "$SCRATCH/fp16_as_f32.npy" || fail "fp16.pth: output differs from the fp16-rounded safetensors run"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/fp16.npy" "$data.output.npy" 1e-2 || fail "fp16.pth: beyond fp16 rounding"
echo "ok: fp16.pth gives the output of its fp16-rounded values exactly, within 1e-2 of fp32"
"$FOLDC" weights "$SCRATCH/w/wrapped_legacy.pth" --diff "$model" 2> /dev/null | grep -q '^match' \
  || fail "foldc weights --diff does not match wrapped_legacy.pth with $name"
echo "ok: foldc weights --diff: wrapped_legacy.pth matches $name"
