#!/bin/sh
# An OpenCL bundle (--target opencl) of a reduced fixture run on pocl (OpenCL on the CPU, which
# runs the GPU schedules: blocks, threads, local memory, barriers) against PyTorch's output within
# 1e-4; at least one layer runs on the device (a generator with a GPU schedule), the others on
# host copies. The bundle builds with only a C compiler (no OpenCL header or library: ldd shows
# none) and warning-free; its program loads libOpenCL.so.1 itself (Debian ships the unversioned
# name only in ocl-icd-opencl-dev). No OpenCL device (no ICD): create returns the device error in
# one line, nothing aborts; a CPU context of this GPU-only bundle is refused. gpu_devices.c: two
# GPU contexts, inputs uploaded every run, the device released and taken again. foldc bench
# --target opencl: the GPU context timed against the GPU's FMA peak measured in the same run; without
# a platform, one line from the peak program (which exits rather than spinning).
# Skipped (77) without pocl (Debian pocl-opencl-icd, ocl-icd-libopencl1: bin/install-deps).
# Usage: gpu_opencl.sh FIXTURE (a config of tests/fixtures/fixtures.lua).
. "$(dirname "$0")/lib.sh"
need_pocl
name=$1
upper=$(echo "$name" | tr 'a-z' 'A-Z')
data="$FIXTURES/data/$name"
b="$SCRATCH/bundle"
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$data.safetensors" --target opencl -o "$b" 2> "$SCRATCH/err" \
  || fail "build --target opencl: $(cat "$SCRATCH/err")"
on_device=$(grep -o '"gpu":"device"' "$b/$name.json" | wc -l)
[ "$on_device" -ge 1 ] || fail "no layer runs on the device"
echo "$on_device of $(grep -o '"gpu":"' "$b/$name.json" | wc -l) layers on the device"
make -s -C "$b" CFLAGS="-O2 -Werror" > /dev/null || fail "make (warnings are errors)"
! ldd "$b/${name}_main" | grep -qi opencl || fail "the program links OpenCL: $(ldd "$b/${name}_main")"

"$b/${name}_main" --weights "$b/$name.weights" --input "$data.input.npy" --output "$SCRATCH/out.npy" > /dev/null \
  || fail "the OpenCL program on pocl"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data.output.npy" 1e-4

# no OpenCL device: one line, exit 1, no abort
if OCL_ICD_VENDORS=/nonexistent "$b/${name}_main" --weights "$b/$name.weights" > /dev/null 2> "$SCRATCH/err"; then
  fail "ran without an OpenCL platform"
fi
[ "$(wc -l < "$SCRATCH/err")" -eq 1 ] && grep -q 'no usable OpenCL device' "$SCRATCH/err" \
  || fail "without a platform: $(cat "$SCRATCH/err")"
if "$b/${name}_main" --weights "$b/$name.weights" --device cpu > /dev/null 2> "$SCRATCH/err"; then
  fail "a GPU-only bundle ran on the CPU"
fi
grep -q 'no kernels for that device' "$SCRATCH/err" || fail "--device cpu: $(cat "$SCRATCH/err")"

make -s -C "$b" "lib$name.a"
cc -O1 -std=c99 -Wall -Wextra -Werror -DMODEL="$name" -DMODEL_UPPER="$upper" -DMODEL_H="\"$name.h\"" \
  -I "$b" -I "$FOLDC_ROOT/tests/e2e" -o "$SCRATCH/devices" "$FOLDC_ROOT/tests/e2e/gpu_devices.c" "$b/lib$name.a" \
  -lm -lpthread -ldl
"$SCRATCH/devices" gpu "$b/$name.weights" || fail "GPU contexts"
# FOLDC_ERR_GPU_DEVICE (11), then FOLDC_ERR_NO_KERNELS (9): foldc_runtime.h
OCL_ICD_VENDORS=/nonexistent "$SCRATCH/devices" fallback "$b/$name.weights" 11 9 || fail "no device, then the CPU"

# foldc bench on the GPU context: per-layer times, % of the GPU's FMA peak measured in the same run
"$FOLDC" bench "$FIXTURES/fixtures.lua:$name" --weights "$data.safetensors" --target opencl --runs 2 \
  > "$SCRATCH/bench" 2> "$SCRATCH/err" || fail "bench --target opencl: $(cat "$SCRATCH/err")"
grep -q "^% peak: of [0-9.]* GFLOP/s (the GPU's FMA peak measured now" "$SCRATCH/bench" \
  && grep -q "^$name: 2 runs" "$SCRATCH/bench" || fail "bench --target opencl: $(cat "$SCRATCH/bench")"
grep "^% peak" "$SCRATCH/bench"
# no OpenCL device: bench fails in one line from the GPU peak program (which exits, not hangs)
if OCL_ICD_VENDORS=/nonexistent timeout 300 "$FOLDC" bench "$FIXTURES/fixtures.lua:$name" --weights "$data.safetensors" \
  --target opencl --runs 2 > /dev/null 2> "$SCRATCH/err"; then
  fail "bench --target opencl ran without an OpenCL platform"
fi
[ "$(wc -l < "$SCRATCH/err")" -eq 1 ] && grep -q "measuring the GPU's peak: .*gpu_peak: .*clGetPlatformIDs" "$SCRATCH/err" \
  || fail "bench without a platform: $(cat "$SCRATCH/err")"
