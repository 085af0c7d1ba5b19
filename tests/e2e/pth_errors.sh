#!/bin/sh
# torch.save checkpoints through the CLI when they are bad: a truncated .pth (zip and legacy) and
# pickles carrying os.system / builtins.eval / posix.system get a one-line error naming the file
# (and the refused global), a non-zero exit, and no output; the payloads never run. Also
# `foldc weights` on a good file, and --diff on a file that does not match.
. "$(dirname "$0")/lib.sh"
name=resnet18_w8
model="$FIXTURES/fixtures.lua:$name"
pth="$FIXTURES/pth"

# expect_failure WHAT EXPECTED-SUBSTRING foldc-args...
expect_failure() {
  what=$1; want=$2; shift 2
  rm -rf "$SCRATCH/out"
  if "$FOLDC" "$@" 2> "$SCRATCH/err" > "$SCRATCH/stdout"; then fail "$what: foldc succeeded"; fi
  lines=$(wc -l < "$SCRATCH/err")
  [ "$lines" -eq 1 ] || fail "$what: expected one line on stderr, got $lines: $(cat "$SCRATCH/err")"
  grep -qF -- "$want" "$SCRATCH/err" || fail "$what: stderr does not name '$want': $(cat "$SCRATCH/err")"
  [ ! -e "$SCRATCH/out" ] || fail "$what: left $SCRATCH/out behind"
  ls "$SCRATCH" | grep -q '^out\.' && fail "$what: left a temporary output behind"
  echo "ok: $what -> $(cut -c1-160 "$SCRATCH/err")"
}

# truncated checkpoints: cut inside the data and inside the zip's directory
size=$(wc -c < "$pth/small.zip.pth")
head -c $((size / 2)) "$pth/small.zip.pth" > "$SCRATCH/half.pth"
head -c $((size - 5)) "$pth/small.zip.pth" > "$SCRATCH/end.pth"
size=$(wc -c < "$pth/small.legacy.pth")
head -c $((size - 7)) "$pth/small.legacy.pth" > "$SCRATCH/legacy_cut.pth"
for f in half end legacy_cut; do
  expect_failure "truncated $f.pth (build)" "$SCRATCH/$f.pth: " build "$model" --weights "$SCRATCH/$f.pth" -o "$SCRATCH/out"
  expect_failure "truncated $f.pth (run)" "$SCRATCH/$f.pth: " run "$model" --weights "$SCRATCH/$f.pth" \
    --input "$FIXTURES/data/$name.input.npy" --output "$SCRATCH/out.npy"
  [ ! -e "$SCRATCH/out.npy" ] || fail "truncated $f.pth: run wrote an output"
  expect_failure "truncated $f.pth (weights)" "$SCRATCH/$f.pth: " weights "$SCRATCH/$f.pth"
done

# malicious pickles: refused by name, and the payload (touch /tmp/foldc-pwned-*) never ran
for case in os_system:os.system eval:__builtin__.eval builtins_eval:builtins.eval posix:posix.system nested:posix.system; do
  file=${case%%:*}; global=${case#*:}
  rm -f "/tmp/foldc-pwned-$file"
  expect_failure "evil_$file.pth" "evil_$file.pth: " build "$model" --weights "$pth/evil_$file.pth" -o "$SCRATCH/out"
  grep -qF "refusing global '$global'" "$SCRATCH/err" || fail "evil_$file.pth: $global not named: $(cat "$SCRATCH/err")"
  expect_failure "evil_$file.pth (weights)" "refusing global '$global'" weights "$pth/evil_$file.pth"
  [ ! -e "/tmp/foldc-pwned-$file" ] || fail "evil_$file.pth: the payload ran"
done
expect_failure "pickled nn.Module" "refusing global 'torch.nn.modules.container.Sequential'" weights "$pth/whole_module.pth"

# foldc weights lists every tensor; --diff exits 1 and names the differences
"$FOLDC" weights "$pth/small.legacy.pth" > "$SCRATCH/list" || fail "foldc weights failed"
grep -q '^bn.num_batches_tracked  *I64  *scalar  *8$' "$SCRATCH/list" || fail "foldc weights: $(cat "$SCRATCH/list")"
grep -q '16 tensors' "$SCRATCH/list" || fail "foldc weights: no summary: $(cat "$SCRATCH/list")"
cat > "$SCRATCH/near.lua" <<'LUA'
local nn = require 'nn'
return { configs = { near = { input = { 1, 3, 8, 8 }, build = function()
  local m = nn.Module('Near')
  m.conv = nn.Conv2d(3, 4, 5)
  m.bn1 = nn.BatchNorm2d(4)
  function m:forward(x) return self.bn1(self.conv(x)) end
  return m
end } } }
LUA
if "$FOLDC" weights "$pth/small.legacy.pth" --diff "$SCRATCH/near.lua" > "$SCRATCH/diff" 2> "$SCRATCH/err"; then
  fail "foldc weights --diff succeeded on a mismatching file"
fi
grep -q '^missing (4)' "$SCRATCH/diff" && grep -q "bn1.weight \[4\]   maybe 'bn.weight'" "$SCRATCH/diff" \
  && grep -q '^unexpected (' "$SCRATCH/diff" && grep -q 'conv.weight: expected 4x3x5x5, found 4x3x3x3' "$SCRATCH/diff" \
  || fail "foldc weights --diff: $(cat "$SCRATCH/diff")"
"$FOLDC" weights "$pth/wrapped.pth" > /dev/null 2> "$SCRATCH/err" || fail "foldc weights wrapped.pth failed"
grep -qF "using 'model' inside checkpoint; stripped 'module.' from 3 keys" "$SCRATCH/err" \
  || fail "foldc weights: no note on stderr: $(cat "$SCRATCH/err")"
echo "ok: foldc weights and --diff"
