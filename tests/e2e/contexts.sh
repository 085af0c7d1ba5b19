#!/bin/sh
# Two contexts run concurrently on two threads give exactly their single-threaded results.
. "$(dirname "$0")/lib.sh"
name=${1:-resnet18_w8}
upper=$(echo "$name" | tr 'a-z' 'A-Z')
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" -o "$SCRATCH/bundle" 2> /dev/null
make -s -C "$SCRATCH/bundle" "lib$name.a"
cc -O1 -std=c99 -Wall -Wextra -Werror -DMODEL="$name" -DMODEL_UPPER="$upper" -DMODEL_H="\"$name.h\"" \
  -I "$SCRATCH/bundle" -o "$SCRATCH/contexts" "$FOLDC_ROOT/tests/e2e/contexts.c" "$SCRATCH/bundle/lib$name.a" -lm -lpthread -ldl
"$SCRATCH/contexts" "$SCRATCH/bundle/$name.weights" || fail "contexts interfere"
