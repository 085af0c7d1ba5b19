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

# fixture_description FIXTURE: the description tests/fixtures/*.lua (fixtures.lua, transformers.lua,
# torchvision.lua, ...) that has the config FIXTURE.
fixture_description() {
  for f in "$FIXTURES"/*.lua; do
    case $f in */check_output.lua) continue ;; esac
    if FOLDC_ROOT="$FOLDC_ROOT" luajit -e "package.path='$FOLDC_ROOT/compiler/?.lua;$FOLDC_ROOT/?.lua;'..package.path
      local ok, d = pcall(dofile, '$f'); os.exit(ok and type(d) == 'table' and d.configs and d.configs['$1'] and 0 or 1)" 2>/dev/null; then
      echo "$f"
      return 0
    fi
  done
  fail "no config $1 in $FIXTURES/*.lua"
}

# build_harness FIXTURE PROGRAM.c: build the fixture's bundle and link PROGRAM.c (which includes
# harness.h) against it, warning-free; leaves $SCRATCH/program and $SCRATCH/bundle/FIXTURE.weights.
build_harness() {
  name=$1
  upper=$(echo "$name" | tr 'a-z' 'A-Z')
  desc=$(fixture_description "$name")
  "$FOLDC" build "$desc:$name" --weights "$FIXTURES/data/$name.safetensors" -o "$SCRATCH/bundle" \
    2> "$SCRATCH/build.log" || { cat "$SCRATCH/build.log" >&2; fail "foldc build $name"; }
  make -s -C "$SCRATCH/bundle" "lib$name.a"
  cc -O1 -std=c99 -Wall -Wextra -Werror -DMODEL="$name" -DMODEL_UPPER="$upper" -DMODEL_H="\"$name.h\"" \
    -I "$SCRATCH/bundle" -I "$FOLDC_ROOT/tests/e2e" -o "$SCRATCH/program" "$2" "$SCRATCH/bundle/lib$name.a" \
    -lm -lpthread -ldl
}

# OpenCL on the CPU (pocl) for --target opencl; skip (77) without it (bin/install-deps). The program
# cache lives in the scratch folder: a cold cache, the program build is part of the test.
need_pocl() {
  [ -e /etc/OpenCL/vendors/pocl.icd ] && ldconfig -p | grep -q 'libOpenCL\.so\.1' \
    || { echo "SKIP: pocl and the OpenCL ICD loader are not installed (bin/install-deps)"; exit 77; }
  export POCL_CACHE_DIR="$SCRATCH/pocl"
}
