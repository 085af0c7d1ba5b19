#!/bin/sh
# Mutation test of the weights readers: CASES (default 3000) corrupted copies (bit flips, boundary
# bytes, truncation, splices, insertions, pickle-targeted edits, zip-directory edits, hostile float
# values: tag-like NaNs, infinities, negative variances) of real checkpoints made by torch.save
# (tests/fixtures/pth/), safetensors fixtures, and resnet18_w8's weights (as safetensors and as zip
# and legacy .pth written by the harness) go through weights.load and the `foldc weights` listing;
# those of resnet18_w8 also through the front end (bind + passes, no kernels). Each must succeed or
# fail with a one-line error naming the file. A crash (signal), a hang (the timeout) or an
# internal error fails the test, and the offending file is kept.
# Usage: mutate_weights.sh [CASES [SEED]]   (CI: 3000; the `fuzz` label runs 200000)
. "$(dirname "$0")/lib.sh"
cases=${1:-3000}
seed=${2:-1}
pth="$FIXTURES/pth"
seeds="--model $FIXTURES/fixtures.lua:resnet18_w8 $FIXTURES/data/resnet18_w8.safetensors
  $pth/small.zip.pth $pth/small.legacy.pth $pth/wrapped.pth $pth/evil_os_system.pth $pth/evil_eval.pth
  $pth/small.expect.safetensors"
# one file is written per case: in memory (/dev/shm) when there is one, twice as fast as a disk
work="$SCRATCH"
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
  work=$(mktemp -d /dev/shm/foldc-mutate.XXXXXX)
  trap 'rm -rf "$SCRATCH" "$work"' EXIT
fi
rc=0
# shellcheck disable=SC2086
timeout $((60 + cases / 20)) luajit "$FOLDC_ROOT/tests/e2e/mutate_weights.lua" "$work" "$cases" "$seed" $seeds || rc=$?
keep=$(mktemp -d "${TMPDIR:-/tmp}/foldc-mutate-fail.XXXXXX")
if [ -f "$work/current" ]; then
  # the harness never finished this case: the reader crashed or hung on it
  cp "$work"/case.* "$keep/" 2> /dev/null || true
  fail "mutate_weights: exit status $rc (crash or hang) on case $(cat "$work/current"); file kept in $keep;" \
    "replay with: luajit tests/e2e/mutate_weights.lua DIR 1 $seed $(echo $seeds) --only $(cut -d' ' -f1 "$work/current")"
fi
if [ "$rc" -ne 0 ]; then
  cp "$work"/fail-* "$keep/" 2> /dev/null || true
  fail "mutate_weights: failing cases kept in $keep"
fi
rmdir "$keep"
