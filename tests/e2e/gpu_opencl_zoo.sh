#!/bin/sh
# OpenCL bundles (--target opencl) of reduced fixtures, one or more per zoo family, run on pocl
# against PyTorch's output within 1e-4 (run_fixture.sh); layers whose generator has no GPU schedule
# run on the host copies in the same GPU context. Skipped (77) without pocl (bin/install-deps).
# Usage: gpu_opencl_zoo.sh FIXTURE...
. "$(dirname "$0")/lib.sh"
need_pocl
failed=
for name in "$@"; do
  if out=$(sh "$FOLDC_ROOT/tests/e2e/run_fixture.sh" "$name" opencl 2>&1); then
    echo "ok: $name: $(echo "$out" | tail -n 1)"
  else
    echo "FAIL: $name: $(echo "$out" | tail -n 2 | tr '\n' ' ')"
    failed="$failed $name"
  fi
done
[ -z "$failed" ] || fail "on pocl:$failed"
