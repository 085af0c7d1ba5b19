# Shared by the end-to-end test scripts: paths, a scratch folder removed on exit, and fail().
set -eu
: "${FOLDC_ROOT:?FOLDC_ROOT must point at the foldc checkout}"
FOLDC="$FOLDC_ROOT/bin/foldc"
FIXTURES="$FOLDC_ROOT/tests/fixtures"
SCRATCH=$(mktemp -d "${TMPDIR:-/tmp}/foldc-test.XXXXXX")
trap 'rm -rf "$SCRATCH"' EXIT

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# build_harness FIXTURE PROGRAM.c: build the fixture's bundle and link PROGRAM.c (which includes
# harness.h) against it, warning-free; leaves $SCRATCH/program and $SCRATCH/bundle/FIXTURE.weights.
build_harness() {
  name=$1
  upper=$(echo "$name" | tr 'a-z' 'A-Z')
  "$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" -o "$SCRATCH/bundle" 2> /dev/null
  make -s -C "$SCRATCH/bundle" "lib$name.a"
  cc -O1 -std=c99 -Wall -Wextra -Werror -DMODEL="$name" -DMODEL_UPPER="$upper" -DMODEL_H="\"$name.h\"" \
    -I "$SCRATCH/bundle" -I "$FOLDC_ROOT/tests/e2e" -o "$SCRATCH/program" "$2" "$SCRATCH/bundle/lib$name.a" \
    -lm -lpthread -ldl
}
