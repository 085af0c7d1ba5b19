#!/bin/sh
# generated/ holds code-only bundles for x86-64 (AVX-512, AVX2+FMA and SSE4.1 tiers) and arm64, one
# folder per model, and stays true to foldc: for each MODEL, a fresh
#   foldc build MODEL --weights random --no-weights --target x86-64,arm64
# is byte-identical to generated/MODEL, and a copy of generated/MODEL links with its own Makefile
# natively and with CC=aarch64-linux-gnu-gcc (when installed). diracnet18's native program, on the
# blob of `foldc build diracnet18 --weights random`, gives exactly `foldc run`'s output.
# Usage: regen_generated.sh MODEL...          check (the test)
#        regen_generated.sh --write MODEL...  replace generated/MODEL with a fresh build
. "$(dirname "$0")/lib.sh"
write=
if [ "${1:-}" = --write ]; then write=1; shift; fi
[ $# -gt 0 ] || fail "usage: regen_generated.sh [--write] MODEL..."
target=x86-64,arm64
native=$(uname -m | tr _ -)   # as file(1) names it: x86-64, aarch64

# run_diracnet18: the committed program (linked natively in $SCRATCH/make-diracnet18) gives exactly
# foldc run's output on the same seeded random weights and input
run_diracnet18() {
  "$FOLDC" build diracnet18 --weights random --target "$target" -o "$SCRATCH/weights" 2> /dev/null
  luajit -e "package.path = '$FOLDC_ROOT/compiler/?.lua;$FOLDC_ROOT/compiler/?/init.lua;' .. package.path
    local tensor = require 'tensor'
    require('weights.npy').write('$SCRATCH/in.npy', tensor.random({ 1, 3, 224, 224 }, tensor.rng(7), 1))"
  "$SCRATCH/make-diracnet18/diracnet18_main" --weights "$SCRATCH/weights/diracnet18.weights" --input "$SCRATCH/in.npy" \
    --output "$SCRATCH/got.npy" > /dev/null || fail "generated/diracnet18's program on random weights"
  "$FOLDC" run diracnet18 --weights random --target "$target" --input "$SCRATCH/in.npy" --output "$SCRATCH/want.npy" 2> /dev/null \
    || fail "foldc run diracnet18 --target $target"
  luajit "$FIXTURES/check_output.lua" "$SCRATCH/got.npy" "$SCRATCH/want.npy" 0 > "$SCRATCH/diff" \
    || { cat "$SCRATCH/diff" >&2; fail "generated/diracnet18's program and foldc run differ"; }
  echo "ok: generated/diracnet18's program gives foldc run's output ($(cat "$SCRATCH/diff"))"
}

for m in "$@"; do
  "$FOLDC" build "$m" --weights random --no-weights --target "$target" -o "$SCRATCH/$m" 2> "$SCRATCH/err" \
    || { cat "$SCRATCH/err" >&2; fail "foldc build $m --target $target"; }
  if [ -n "$write" ]; then
    rm -rf "$FOLDC_ROOT/generated/$m"
    cp -R "$SCRATCH/$m" "$FOLDC_ROOT/generated/$m"
    echo "wrote generated/$m ($(du -sh "$FOLDC_ROOT/generated/$m" | cut -f1))"
    continue
  fi
  diff -rq "$FOLDC_ROOT/generated/$m" "$SCRATCH/$m" || fail "generated/$m differs from a fresh build"
  echo "ok: generated/$m regenerates with no diff"

  # the committed folder links as shipped (a copy: make writes into the folder)
  cp -R "$FOLDC_ROOT/generated/$m" "$SCRATCH/make-$m"
  make -s -C "$SCRATCH/make-$m" > /dev/null || fail "make in a copy of generated/$m"
  file -L "$SCRATCH/make-$m/${m}_main" | grep -q "ELF 64-bit.*$native" || fail "generated/$m: make gave no $native program"
  echo "ok: generated/$m links natively"
  if command -v aarch64-linux-gnu-gcc > /dev/null; then
    make -s -C "$SCRATCH/make-$m" CC=aarch64-linux-gnu-gcc > /dev/null || fail "make CC=aarch64-linux-gnu-gcc in a copy of generated/$m"
    file -L "$SCRATCH/make-$m/${m}_main" | grep -q "ELF 64-bit.*aarch64" || fail "generated/$m: make CC=aarch64-linux-gnu-gcc gave no aarch64 program"
    make -s -C "$SCRATCH/make-$m" > /dev/null   # back to the native program
    echo "ok: generated/$m links with aarch64-linux-gnu-gcc"
  fi
  if [ "$m" = diracnet18 ]; then run_diracnet18; fi
done
