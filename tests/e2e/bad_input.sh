#!/bin/sh
# Bad input gets a one-line error naming the culprit, a non-zero exit, and leaves nothing behind:
# a broken description, an unknown op, a shape error, bad layer parameters (named with their value),
# sizes over memory_gib, sandbox escapes, runaway loops, missing / unexpected / misshapen weights,
# a truncated safetensors file, and, at run time, a corrupted weights blob.
. "$(dirname "$0")/lib.sh"
name=resnet18_w8
model="$FIXTURES/fixtures.lua:$name"
weights="$FIXTURES/data/$name.safetensors"

# expect_failure WHAT EXPECTED-SUBSTRING foldc-args...
expect_failure() {
  what=$1; want=$2; shift 2
  rm -rf "$SCRATCH/out"
  if "$FOLDC" "$@" 2> "$SCRATCH/err" > /dev/null; then fail "$what: foldc succeeded"; fi
  lines=$(wc -l < "$SCRATCH/err")
  [ "$lines" -eq 1 ] || fail "$what: expected one line on stderr, got $lines: $(cat "$SCRATCH/err")"
  grep -qF -- "$want" "$SCRATCH/err" || fail "$what: stderr does not name '$want': $(cat "$SCRATCH/err")"
  [ ! -e "$SCRATCH/out" ] || fail "$what: left $SCRATCH/out behind"
  ls "$SCRATCH" | grep -q '^out\.tmp' && fail "$what: left a temporary bundle behind"
  echo "ok: $what -> $(cat "$SCRATCH/err")"
}

cat > "$SCRATCH/syntax.lua" <<'LUA'
local nn = require 'nn'
return { configs = { m = { input = { 1, 3, 8, 8 }, build = function()
  local m = nn.Conv2d(3, 4, 3) +
end } } }
LUA
expect_failure 'description syntax error' 'syntax.lua:4' build "$SCRATCH/syntax.lua" --weights random -o "$SCRATCH/out"

cat > "$SCRATCH/unknown_op.lua" <<'LUA'
local nn = require 'nn'
return { configs = { m = { input = { 1, 3, 8, 8 }, build = function()
  local m = nn.Module('M')
  m.conv = nn.Conv2d(3, 4, 3)
  m.act = nn.Softplus()
  function m:forward(x) return self.act(self.conv(x)) end
  return m
end } } }
LUA
expect_failure 'unsupported PyTorch module' 'unknown_op.lua:5: nn.Softplus is not supported yet (supported activations: ReLU, ReLU6, SiLU, Hardswish, Hardsigmoid, Sigmoid, GELU, Tanh; see models/README.md)' build "$SCRATCH/unknown_op.lua" --weights random -o "$SCRATCH/out"

cat > "$SCRATCH/shape.lua" <<'LUA'
local nn = require 'nn'
return { configs = { m = { input = { 1, 3, 8, 8 }, build = function()
  local m = nn.Module('M')
  m.conv1 = nn.Conv2d(3, 4, 3)
  m.conv2 = nn.Conv2d(5, 4, 3)
  function m:forward(x)
    local y = self.conv2(self.conv1(x))
    return y
  end
  return m
end } } }
LUA
expect_failure 'shape error in forward' 'shape.lua:7: conv2 (conv2d): expects 5 input channels, got 4' build "$SCRATCH/shape.lua" --weights random -o "$SCRATCH/out"

expect_failure 'unknown model' 'unknown model "resnet7"' build resnet7 --weights random -o "$SCRATCH/out"

# A description's bad parameter is named with its value at the description's line, before anything
# is allocated. bad_param NAME CONV-ARGS INPUT-HW EXPECTED-AFTER-FILE:3
bad_param() {
  cat > "$SCRATCH/$1.lua" <<LUA
local nn = require 'nn'
return { configs = { m = { input = { 1, 3, ${3:-8, 8} }, build = function()
  local conv = nn.Conv2d($2)
  return nn.Sequential(conv, nn.ReLU())
end } } }
LUA
  expect_failure "$1" "$1.lua:3$4" build "$SCRATCH/$1.lua" --weights random -o "$SCRATCH/out"
}
bad_param kernel0 '3, 4, 0' '' ': Conv2d kernel_size must be a positive integer, got 0'
bad_param stride0 '3, 4, 3, { stride = 0 }' '' ': Conv2d stride must be a positive integer, got 0'
bad_param dilation0 '3, 4, 3, { dilation = 0 }' '' ': Conv2d dilation must be a positive integer, got 0'
bad_param padding_neg '3, 4, 3, { padding = -1 }' '' ': Conv2d padding must be a non-negative integer, got -1'
bad_param channels_1e9 '3, 1e9, 3' '' ': 0.weight [1000000000x3x3x3]: needs 100.6 GiB, over the limit memory_gib=16'
bad_param groups '3, 4, 3, { groups = 2 }' '' ': Conv2d groups=2 must divide in_channels=3 and out_channels=4'
bad_param huge_map '3, 64, 3' '30000, 30000' ' (in 0): 0 (conv2d) output [1x64x29998x29998]: needs 214.5 GiB'
cat > "$SCRATCH/huge_input.lua" <<'LUA'
local nn = require 'nn'
return { configs = { m = { input = { 1, 3, 100000, 100000 }, build = function() return nn.ReLU() end } } }
LUA
expect_failure 'huge input' 'huge_input.lua: config "m": input [1x3x100000x100000]: needs 111.8 GiB, over the limit memory_gib=16' \
  build "$SCRATCH/huge_input.lua" --weights random -o "$SCRATCH/out"

# A description is data: no command runs, a runaway loop stops at the budget, a non-string error is
# named. (tests/unit/description_sandbox_spec.lua has the other escapes.)
cat > "$SCRATCH/escape.lua" <<LUA
local nn = require 'nn'
os.execute('touch $SCRATCH/PWNED')
return { configs = {} }
LUA
expect_failure 'os.execute' "escape.lua:2: attempt to index global 'os'" build "$SCRATCH/escape.lua" --weights random -o "$SCRATCH/out"
[ ! -e "$SCRATCH/PWNED" ] || fail 'os.execute ran'
cat > "$SCRATCH/loop.lua" <<'LUA'
local nn = require 'nn'
return { configs = { m = { input = { 1, 3, 8, 8 }, build = function()
  while true do pcall(function() while true do end end) end
end } } }
LUA
expect_failure 'runaway loop' 'loop.lua:3: the description ran over its budget of 20 M instructions' \
  build "$SCRATCH/loop.lua" --weights random -o "$SCRATCH/out" --limit description_mega_instructions=20
cat > "$SCRATCH/error_table.lua" <<'LUA'
local nn = require 'nn'
error(setmetatable({}, { __tostring = function() return 'x' end }))
LUA
expect_failure 'error({})' 'error_table.lua:2: raised a non-string error (table)' build "$SCRATCH/error_table.lua" --weights random -o "$SCRATCH/out"

keys=$(luajit "$FOLDC_ROOT/tests/e2e/bad_weights.lua" "$weights" "$SCRATCH")
missing=$(echo "$keys" | sed -n 1p); extra=$(echo "$keys" | sed -n 2p); reshaped=$(echo "$keys" | sed -n 3p)
expect_failure 'missing key' "missing: $missing" build "$model" --weights "$SCRATCH/missing.safetensors" -o "$SCRATCH/out"
expect_failure 'unexpected key' "unexpected: $extra" build "$model" --weights "$SCRATCH/extra.safetensors" -o "$SCRATCH/out"
expect_failure 'wrong shape' "$reshaped: expected" build "$model" --weights "$SCRATCH/shape.safetensors" -o "$SCRATCH/out"
expect_failure 'truncated safetensors' "truncated.safetensors" build "$model" --weights "$SCRATCH/truncated.safetensors" -o "$SCRATCH/out"
expect_failure 'missing weights file' "nothere.safetensors" build "$model" --weights "$SCRATCH/nothere.safetensors" -o "$SCRATCH/out"
expect_failure 'bad target' 'not a Halide target' build "$model" --weights "$weights" --target pentium -o "$SCRATCH/out"
expect_failure 'tune on a GPU target' 'GPU schedules are not tuned yet' tune "$model" --weights "$weights" --target opencl

# a corrupted blob is refused by the bundle's create(), not run
"$FOLDC" build "$model" --weights "$weights" -o "$SCRATCH/bundle" 2> /dev/null
make -s -C "$SCRATCH/bundle"
printf '\001' | dd of="$SCRATCH/bundle/$name.weights" bs=1 seek=5000 conv=notrunc 2> /dev/null
if "$SCRATCH/bundle/${name}_main" --weights "$SCRATCH/bundle/$name.weights" 2> "$SCRATCH/err"; then
  fail 'corrupted weights blob was accepted'
fi
grep -q 'checksum' "$SCRATCH/err" || fail "corrupted blob: $(cat "$SCRATCH/err")"
echo "ok: corrupted weights blob -> $(cat "$SCRATCH/err")"
