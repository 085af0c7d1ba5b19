#!/bin/sh
# arm64 bundles of the given fixtures, cross-compiled (aarch64-linux-gnu-gcc) and run under
# qemu-aarch64-static by `foldc run --target arm64` (run_fixture.sh), each within 1e-4 of PyTorch's
# output, and saying on stderr that it ran under the emulator. Then a machine without the emulator:
# one line naming what is missing, before anything is built. Skipped (77) without the cross tools
# (bin/install-deps installs them). Usage: cross_arm64.sh FIXTURE...
. "$(dirname "$0")/lib.sh"
for tool in aarch64-linux-gnu-gcc qemu-aarch64-static; do
  command -v "$tool" > /dev/null || { echo "SKIP: $tool is not installed (bin/install-deps)"; exit 77; }
done
for name in "$@"; do
  sh "$FOLDC_ROOT/tests/e2e/run_fixture.sh" "$name" arm64 2> "$SCRATCH/err" || { cat "$SCRATCH/err" >&2; fail "$name on arm64"; }
  grep -qx 'foldc: running the arm64 bundle under qemu-aarch64-static' "$SCRATCH/err" \
    || { cat "$SCRATCH/err" >&2; fail "$name: no 'running the arm64 bundle under qemu-aarch64-static' on stderr"; }
  echo "ok: $name on arm64 under qemu"
done

# no emulator on PATH: refused with one line, no kernel compiled, nothing written
mkdir "$SCRATCH/bin"
for tool in luajit readlink dirname; do ln -s "$(command -v "$tool")" "$SCRATCH/bin/$tool"; done
data="$FIXTURES/data/residual_relu_8"
if PATH="$SCRATCH/bin" FOLDC_CACHE="$SCRATCH/cache" "$FOLDC" run "$FIXTURES/fixtures.lua:residual_relu_8" \
    --weights "$data.safetensors" --input "$data.input.npy" --output "$SCRATCH/none.npy" --target arm64 \
    > "$SCRATCH/out" 2> "$SCRATCH/err"; then
  fail "arm64 without an emulator: exit 0"
fi
[ "$(wc -l < "$SCRATCH/err")" -eq 1 ] && grep -q 'qemu-aarch64-static is not installed' "$SCRATCH/err" \
  || { cat "$SCRATCH/err" >&2; fail "arm64 without an emulator: not one line naming qemu-aarch64-static"; }
[ ! -e "$SCRATCH/none.npy" ] && [ ! -e "$SCRATCH/cache/kernels" ] || fail "arm64 without an emulator: something was built or written"
echo "ok: without an emulator: $(cat "$SCRATCH/err")"
