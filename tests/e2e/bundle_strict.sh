#!/bin/sh
# A bundle copied out of the checkout builds with make alone (no Halide, LuaJIT or foldc on the
# path), warning-free under gcc and clang with -std=c99 -Wall -Wextra -Werror, through both its
# Makefile and its CMakeLists.txt, and runs. Usage: bundle_strict.sh FIXTURE
. "$(dirname "$0")/lib.sh"
name=${1:-diracnet18_w8}
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" -o "$SCRATCH/bundle"
for cc in gcc clang; do
  rm -rf "$SCRATCH/copy" && cp -r "$SCRATCH/bundle" "$SCRATCH/copy"
  env -i PATH=/usr/bin:/bin make -s -C "$SCRATCH/copy" CC=$cc CFLAGS="-O2 -Werror" || fail "make with $cc"
  "$SCRATCH/copy/${name}_main" --weights "$SCRATCH/copy/$name.weights" \
    --input "$FIXTURES/data/$name.input.npy" --output "$SCRATCH/out.npy" > /dev/null || fail "run with $cc"
  luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$FIXTURES/data/$name.output.npy" 1e-4
  rm -rf "$SCRATCH/cmake"
  CC=$cc cmake -S "$SCRATCH/copy" -B "$SCRATCH/cmake" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" > /dev/null || fail "cmake with $cc"
  cmake --build "$SCRATCH/cmake" > /dev/null || fail "cmake build with $cc"
  "$SCRATCH/cmake/${name}_main" --weights "$SCRATCH/copy/$name.weights" > /dev/null || fail "cmake-built run with $cc"
done
echo "ok: $name builds warning-free with gcc and clang (make and cmake) and matches PyTorch"
