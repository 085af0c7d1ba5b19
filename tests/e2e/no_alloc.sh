#!/bin/sh
# <model>_run is allocation-free, on one thread and on two (see no_alloc.c).
. "$(dirname "$0")/lib.sh"
name=${1:-resnet18_w8}
upper=$(echo "$name" | tr 'a-z' 'A-Z')
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" -o "$SCRATCH/bundle" 2> /dev/null
make -s -C "$SCRATCH/bundle" "lib$name.a"
cc -O1 -std=c99 -Wall -Wextra -Werror -DMODEL="$name" -DMODEL_UPPER="$upper" -DMODEL_H="\"$name.h\"" \
  -I "$SCRATCH/bundle" -o "$SCRATCH/no_alloc" "$FOLDC_ROOT/tests/e2e/no_alloc.c" "$SCRATCH/bundle/lib$name.a" -lm -lpthread -ldl
"$SCRATCH/no_alloc" "$SCRATCH/bundle/$name.weights" 1 || fail "allocations in run (1 thread)"
"$SCRATCH/no_alloc" "$SCRATCH/bundle/$name.weights" 2 || fail "allocations in run (2 threads)"
