#!/bin/sh
# One bundle folder for two architectures (--target host,arm64): one kernel library each
# (lib<m>_kernels-x86_64.a, lib<m>_kernels-aarch64.a), one weights blob; the same folder builds with
# `make` (run natively), `make CC=aarch64-linux-gnu-gcc` (run under qemu-aarch64-static), CMake
# natively and CMake crossed (CMAKE_SYSTEM_PROCESSOR aarch64), each binary of the right
# architecture and within 1e-4 of PyTorch's output. A compiler for an architecture the bundle lacks
# stops make and CMake with one message. Skipped (77) without the cross tools (bin/install-deps).
# Usage: cross_multiarch.sh FIXTURE (a config of tests/fixtures/fixtures.lua), on an x86-64 machine.
. "$(dirname "$0")/lib.sh"
[ "$(uname -m)" = x86_64 ] || { echo "SKIP: written for an x86-64 machine"; exit 77; }
for tool in aarch64-linux-gnu-gcc qemu-aarch64-static; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool is not installed (bin/install-deps)"; exit 77; }
done
name=$1
data="$FIXTURES/data/$name"
b="$SCRATCH/bundle"
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$data.safetensors" --target host,arm64 -o "$b" 2> /dev/null
[ -f "$b/lib${name}_kernels-x86_64.a" ] && [ -f "$b/lib${name}_kernels-aarch64.a" ] && [ ! -e "$b/lib${name}_kernels.a" ] \
  || fail "expected lib${name}_kernels-x86_64.a and -aarch64.a, found: $(ls "$b" | tr '\n' ' ')"
[ "$(ls "$b" | grep -c '\.weights$')" -eq 1 ] || fail "expected one weights blob"

# check WHAT EXE [RUNNER...]: EXE is an ELF of machine WHAT and runs the fixture within 1e-4
check() {
  what=$1 exe=$2
  shift 2
  file -L "$exe" | grep -q "ELF 64-bit.*$what" || fail "$exe: not a $what executable: $(file -L "$exe")"
  "$@" "$exe" --weights "$b/$name.weights" --input "$data.input.npy" --output "$SCRATCH/out.npy" > /dev/null
  luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data.output.npy" 1e-4 > "$SCRATCH/diff" \
    || { cat "$SCRATCH/diff" >&2; fail "$exe ($what): output differs from PyTorch's"; }
  echo "ok: $exe ($what): $(cat "$SCRATCH/diff")"
}
qemu="qemu-aarch64-static -L /usr/aarch64-linux-gnu"

make -s -C "$b"
check x86-64 "$b/${name}_main"
make -s -C "$b" CC=aarch64-linux-gnu-gcc
check aarch64 "$b/${name}_main" $qemu
make -s -C "$b"   # back to the native compiler: everything rebuilt
check x86-64 "$b/${name}_main"
make -s -C "$b" clean

cmake -S "$b" -B "$SCRATCH/native" > /dev/null
cmake --build "$SCRATCH/native" > /dev/null
check x86-64 "$SCRATCH/native/${name}_main"
cmake -S "$b" -B "$SCRATCH/arm64" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=aarch64 \
  -DCMAKE_C_COMPILER=aarch64-linux-gnu-gcc > /dev/null
cmake --build "$SCRATCH/arm64" > /dev/null
check aarch64 "$SCRATCH/arm64/${name}_main" $qemu

# an architecture the bundle has no kernels for: one message naming it and what the bundle has
mkdir "$SCRATCH/bin"
printf '#!/bin/sh\n[ "$1" = -dumpmachine ] && echo riscv64-linux-gnu && exit 0\nexit 1\n' > "$SCRATCH/bin/rvcc"
chmod +x "$SCRATCH/bin/rvcc"
if make -s -C "$b" CC="$SCRATCH/bin/rvcc" > "$SCRATCH/out" 2> "$SCRATCH/err"; then fail "make for riscv64: exit 0"; fi
grep -q "no kernels for riscv64 .*lib${name}_kernels-aarch64.a lib${name}_kernels-x86_64.a" "$SCRATCH/err" \
  || { cat "$SCRATCH/err" >&2; fail "make for riscv64: no message naming the architecture and the libraries"; }
if cmake -S "$b" -B "$SCRATCH/rv" -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=riscv64 > "$SCRATCH/out" 2>&1; then
  fail "cmake for riscv64: exit 0"
fi
grep -q "no kernels for riscv64" "$SCRATCH/out" || { cat "$SCRATCH/out" >&2; fail "cmake for riscv64: no message"; }
echo "ok: make and cmake for riscv64 stop: $(grep -o "no kernels for riscv64.*" "$SCRATCH/err")"
