#!/bin/sh
# One bundle built with clang's AddressSanitizer (with leak detection) and UndefinedBehaviorSanitizer
# runs clean on a 2-thread context, and matches PyTorch. Usage: sanitizers.sh FIXTURE
. "$(dirname "$0")/lib.sh"
name=${1:-resnet18_w8}
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" -o "$SCRATCH/bundle"
san="-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
make -s -C "$SCRATCH/bundle" CC=clang CFLAGS="-O1 -g -Werror $san" LDFLAGS="$san" || fail "sanitizer build"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 UBSAN_OPTIONS=print_stacktrace=1 \
  "$SCRATCH/bundle/${name}_main" --weights "$SCRATCH/bundle/$name.weights" --runs 2 --threads 2 \
  --input "$FIXTURES/data/$name.input.npy" --output "$SCRATCH/out.npy" > /dev/null || fail "sanitizer run"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$FIXTURES/data/$name.output.npy" 1e-4
echo "ok: $name clean under ASan+UBSan"
