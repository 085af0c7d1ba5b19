#!/bin/sh
# Two 2-thread contexts run concurrently from two threads give exactly their results computed alone,
# and a 2-thread context the single-threaded result (see contexts.c).
. "$(dirname "$0")/lib.sh"
name=${1:-resnet18_w8}
build_harness "$name" "$FOLDC_ROOT/tests/e2e/contexts.c"
"$SCRATCH/program" "$SCRATCH/bundle/$name.weights" || fail "contexts interfere"
