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
