#!/bin/sh
# ThreadSanitizer is clean on the thread pool and glue (foldc_pool.h, <model>.c; the Halide kernels
# are not instrumented): contexts.c (two 2-thread contexts run concurrently from two application
# threads, then one 2-thread context) built with clang -fsanitize=thread; any report fails.
# Usage: tsan.sh FIXTURE
. "$(dirname "$0")/lib.sh"
name=${1:-resnet18_w8}
upper=$(echo "$name" | tr 'a-z' 'A-Z')
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" -o "$SCRATCH/bundle" 2> /dev/null
tsan="-O1 -g -fsanitize=thread -Werror"
make -s -C "$SCRATCH/bundle" CC=clang CFLAGS="$tsan" "lib$name.a" || fail "ThreadSanitizer build of the bundle"
clang $tsan -std=c99 -Wall -Wextra -DMODEL="$name" -DMODEL_UPPER="$upper" -DMODEL_H="\"$name.h\"" \
  -I "$SCRATCH/bundle" -I "$FOLDC_ROOT/tests/e2e" -o "$SCRATCH/program" "$FOLDC_ROOT/tests/e2e/contexts.c" \
  "$SCRATCH/bundle/lib$name.a" -lm -lpthread -ldl || fail "ThreadSanitizer build of contexts.c"
TSAN_OPTIONS="halt_on_error=1:exitcode=66" "$SCRATCH/program" "$SCRATCH/bundle/$name.weights" ||
  fail "ThreadSanitizer report or mismatching results (exit $?)"
echo "ok: $name: two 2-thread contexts run concurrently, clean under ThreadSanitizer"
