#!/bin/sh
# One fixture end to end: foldc run (build, compile, run the bundle) against PyTorch's output,
# within 1e-4 of the output's largest magnitude. The config is looked up in each description
# tests/fixtures/*.lua in turn (fixtures.lua, transformers.lua, ...).
# Usage: run_fixture.sh FIXTURE [TARGET] (TARGET: foldc's --target, default host).
. "$(dirname "$0")/lib.sh"
name=$1
target=${2:-host}
data="$FIXTURES/data/$name"
desc=
for f in "$FIXTURES"/*.lua; do
  case $f in */check_output.lua) continue ;; esac
  if FOLDC_ROOT="$FOLDC_ROOT" luajit -e "package.path='$FOLDC_ROOT/compiler/?.lua;$FOLDC_ROOT/?.lua;'..package.path
    local ok, d = pcall(dofile, '$f'); os.exit(ok and type(d) == 'table' and d.configs and d.configs['$name'] and 0 or 1)" 2>/dev/null; then
    desc=$f; break
  fi
done
[ -n "$desc" ] || fail "no config $name in $FIXTURES/*.lua"
"$FOLDC" run "$desc:$name" --weights "$data.safetensors" \
  --input "$data.input.npy" --output "$SCRATCH/out.npy" --target "$target"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data.output.npy" 1e-4
