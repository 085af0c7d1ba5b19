#!/bin/sh
# Two contexts run concurrently on two threads give exactly their single-threaded results.
. "$(dirname "$0")/lib.sh"
name=${1:-resnet18_w8}
build_harness "$name" "$FOLDC_ROOT/tests/e2e/contexts.c"
"$SCRATCH/program" "$SCRATCH/bundle/$name.weights" || fail "contexts interfere"
