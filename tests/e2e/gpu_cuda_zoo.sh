#!/bin/sh
# CUDA bundles (--target cuda, sm_70) of full-size zoo models, random weights, on a machine without
# an NVIDIA driver: each builds with only a C compiler and warning-free, holds sm_70 PTX, and its
# program fails in one line naming the missing driver (where a driver is present that part is
# skipped: tests/gpu_check.sh is for such a machine). Usage: gpu_cuda_zoo.sh MODEL...
. "$(dirname "$0")/lib.sh"
driver=
ldconfig -p | grep -q 'libcuda\.so' && driver=yes
failed=
for name in "$@"; do
  b="$SCRATCH/$name"
  if ! "$FOLDC" build "$name" --weights random --target cuda -o "$b" 2> "$SCRATCH/err"; then
    echo "FAIL: $name: build: $(tail -n 1 "$SCRATCH/err")"; failed="$failed $name"; continue
  fi
  ptx=$(sm70_ptx_kernels "$b" "$name")
  if [ "$ptx" -lt 1 ]; then
    echo "FAIL: $name: no sm_70 PTX"; failed="$failed $name"; continue
  fi
  if ! make -s -C "$b" CFLAGS="-O2 -Werror" > "$SCRATCH/err" 2>&1; then
    echo "FAIL: $name: make: $(head -n 3 "$SCRATCH/err")"; failed="$failed $name"; continue
  fi
  if [ -z "$driver" ] && ! fails_without_cuda_driver "$b" "$name"; then
    echo "FAIL: $name: without a driver: $(cat "$SCRATCH/err")"; failed="$failed $name"; continue
  fi
  echo "ok: $name: PTX in $ptx kernels, $(grep -o '"gpu":"device"' "$b/$name.json" | wc -l) layers on the device"
  rm -rf "$b"
done
[ -z "$failed" ] || fail "CUDA bundles:$failed"
