#!/bin/sh
# <model>_run is allocation-free, on one thread and on two (see no_alloc.c).
. "$(dirname "$0")/lib.sh"
name=${1:-resnet18_w8}
build_harness "$name" "$FOLDC_ROOT/tests/e2e/no_alloc.c"
"$SCRATCH/program" "$SCRATCH/bundle/$name.weights" 1 || fail "allocations in run (1 thread)"
"$SCRATCH/program" "$SCRATCH/bundle/$name.weights" 2 || fail "allocations in run (2 threads)"
