#!/bin/sh
# The portable x86-64 bundle (--target x86-64: AVX-512, AVX2+FMA and SSE4.1 tiers in one library,
# chosen by cpuid at the first call) of a fixture, run natively and under qemu-x86_64-static as a
# Haswell (AVX2, no AVX-512) and a Nehalem (SSE4.1): each within 1e-4 of PyTorch's output. A tier
# the emulated CPU lacks would die with SIGILL, so a match also shows the dispatch picked a lower
# tier. Skipped (77) without qemu-user-static (bin/install-deps installs it).
# Usage: cross_x86_tiers.sh FIXTURE
. "$(dirname "$0")/lib.sh"
command -v qemu-x86_64-static > /dev/null || { echo "SKIP: qemu-x86_64-static is not installed (bin/install-deps)"; exit 77; }
name=$1
data="$FIXTURES/data/$name"
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$data.safetensors" --target x86-64 -o "$SCRATCH/bundle" 2> /dev/null
make -s -C "$SCRATCH/bundle"
run() {
  "$@" "$SCRATCH/bundle/${name}_main" --weights "$SCRATCH/bundle/$name.weights" --input "$data.input.npy" \
    --output "$SCRATCH/out.npy" > /dev/null
  luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data.output.npy" 1e-4
  rm -f "$SCRATCH/out.npy"
}
run || fail "$name (x86-64) natively"
echo "ok: $name (x86-64) natively"
for cpu in Haswell Nehalem; do
  run qemu-x86_64-static -cpu "$cpu" || fail "$name (x86-64) under qemu-x86_64-static -cpu $cpu"
  echo "ok: $name (x86-64) under qemu-x86_64-static -cpu $cpu"
done
