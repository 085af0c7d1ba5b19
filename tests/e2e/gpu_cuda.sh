#!/bin/sh
# A CUDA bundle beside CPU kernels (--target host,cuda) of a reduced fixture, on a machine without
# an NVIDIA driver: it builds with only a C compiler (no CUDA toolkit, header or library; ldd shows
# none) and warning-free, and holds PTX for the default capability (sm_70) for every layer whose
# generator has a GPU schedule; the program's GPU context returns the driver error in one line and
# nothing aborts; the same bundle on the CPU (--device cpu, and create_on(CPU) in the process that
# just failed on the GPU) runs and matches PyTorch's output within 1e-4. Where a driver is present
# the GPU part is skipped (tests/gpu_check.sh is for such a machine).
# Usage: gpu_cuda.sh FIXTURE (a config of tests/fixtures/fixtures.lua).
. "$(dirname "$0")/lib.sh"
name=$1
upper=$(echo "$name" | tr 'a-z' 'A-Z')
data="$FIXTURES/data/$name"
b="$SCRATCH/bundle"
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$data.safetensors" --target host,cuda -o "$b" 2> "$SCRATCH/err" \
  || fail "build --target host,cuda: $(cat "$SCRATCH/err")"
on_device=$(grep -o '"gpu":"device"' "$b/$name.json" | wc -l)
[ "$on_device" -ge 1 ] || fail "no layer runs on the device"
ptx=$(sm70_ptx_kernels "$b" "$name")
[ "$ptx" -ge 1 ] || fail "no sm_70 PTX in lib${name}_kernels.a"
echo "$on_device layers on the device, PTX in $ptx kernels"
make -s -C "$b" CFLAGS="-O2 -Werror" > /dev/null || fail "make (warnings are errors)"
! ldd "$b/${name}_main" | grep -qi cuda || fail "the program links CUDA: $(ldd "$b/${name}_main")"

"$b/${name}_main" --weights "$b/$name.weights" --device cpu --input "$data.input.npy" --output "$SCRATCH/out.npy" \
  > /dev/null || fail "the CUDA bundle on the CPU"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data.output.npy" 1e-4

if ldconfig -p | grep -q 'libcuda\.so'; then
  echo "SKIP (part): an NVIDIA driver is installed; the no-driver checks need a machine without one"
  exit 0
fi
fails_without_cuda_driver "$b" "$name" || fail "without a driver: $(cat "$SCRATCH/err")"
cat "$SCRATCH/err"
make -s -C "$b" "lib$name.a"
cc -O1 -std=c99 -Wall -Wextra -Werror -DMODEL="$name" -DMODEL_UPPER="$upper" -DMODEL_H="\"$name.h\"" \
  -I "$b" -I "$FOLDC_ROOT/tests/e2e" -o "$SCRATCH/devices" "$FOLDC_ROOT/tests/e2e/gpu_devices.c" "$b/lib$name.a" \
  -lm -lpthread -ldl
# FOLDC_ERR_GPU_DRIVER (10), then the CPU context runs (0): foldc_runtime.h
"$SCRATCH/devices" fallback "$b/$name.weights" 10 0 || fail "no driver, then the CPU"
