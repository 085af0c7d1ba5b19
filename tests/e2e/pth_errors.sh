#!/bin/sh
# torch.save checkpoints through the CLI when they are bad: a truncated .pth (zip and legacy) and
# pickles carrying os.system / builtins.eval / posix.system get a one-line error naming the file
# (and the refused global), a non-zero exit, and no output; the payloads never run. Memory and
# time bombs (tests/fixtures/make_pth_bombs.py: stride-0 views, a shape over a tiny storage, a
# 1000:1 deflated entry, declared sizes that lie) are refused the same way, naming the tensor and
# the bound, within 5 s and a 300 MB address space; --limit expansion lets a legitimate one
# through. Also `foldc weights` on a good file (deflated, zip64 entries), and --diff on a file
# that does not match.
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

# memory and time bombs: refused before anything is allocated, quickly
python3 "$FIXTURES/make_pth_bombs.py" "$SCRATCH/bombs"
bombs="$SCRATCH/bombs"
# bomb FILE EXPECTED-SUBSTRING ALSO-EXPECTED [foldc-args...]: `foldc weights FILE` (or the args)
# refused in 300 MB of address space and 5 s
bomb() {
  file=$1; want=$2; also=$3; shift 3
  [ $# -gt 0 ] || set -- weights "$bombs/$file"
  start=$(date +%s%N)
  (ulimit -v 300000; expect_failure "$file ($1)" "$bombs/$file: $want" "$@")
  ms=$((($(date +%s%N) - start) / 1000000))
  grep -qF -- "$also" "$SCRATCH/err" || fail "$file: stderr does not name '$also': $(cat "$SCRATCH/err")"
  [ "$ms" -lt 5000 ] || fail "$file: took $ms ms"
}
bomb stride0.pth "tensor 'w': shape 32768x32768:" 'over the limit expansion=8'
bomb stride0.pth "tensor 'w': shape 32768x32768:" 'over the limit expansion=8' \
  build "$model" --weights "$bombs/stride0.pth" -o "$SCRATCH/out"
bomb huge_shape.pth "tensor 'w': shape 1048576x1048576" "storage '0', which has 4"
bomb deflate_bomb.pth "tensor 'w': entry 'archive/data/0': deflated" 'over the limit deflate_ratio=100'
bomb deflate_lie.pth "tensor 'w': entry 'archive/data/0' inflates to more than" 'its declared 1048576 bytes'
bomb stored_lie.pth "tensor 'w': entry 'archive/data/0': 1073741824 bytes" 'run past the end of the 506-byte file'
bomb legacy_lie.pth "truncated: storage '0' needs 4398046511104 bytes" 'the file has 16'
bomb expand_16m.pth "tensor 'w': shape 4194304:" 'over the limit expansion=8'
# legitimate but large: --limit raises the bound
(ulimit -v 300000; "$FOLDC" weights "$bombs/expand_16m.pth" --limit expansion=20 > "$SCRATCH/list") \
  || fail "expand_16m.pth with --limit expansion=20 failed"
grep -q '^w  *F32  *4194304  *16777216$' "$SCRATCH/list" || fail "expand_16m.pth: $(cat "$SCRATCH/list")"
echo "ok: expand_16m.pth with --limit expansion=20"
# a zip64 entry (sizes and offset in its extra field, deflated), and the small fixture re-packed
# with every entry deflated, read as the stored original
"$FOLDC" weights "$bombs/zip64.pth" > "$SCRATCH/list" || fail "zip64.pth failed"
grep -q '^w  *F32  *4  *16$' "$SCRATCH/list" || fail "zip64.pth: $(cat "$SCRATCH/list")"
python3 -c '
import sys, zipfile
src = zipfile.ZipFile(sys.argv[1])
with zipfile.ZipFile(sys.argv[2], "w", zipfile.ZIP_DEFLATED) as dst:
    for i in src.infolist():
        dst.writestr(i.filename, src.read(i.filename))
' "$pth/small.zip.pth" "$SCRATCH/deflated.pth"
"$FOLDC" weights "$pth/small.zip.pth" | sed '$d' > "$SCRATCH/stored.list"
"$FOLDC" weights "$SCRATCH/deflated.pth" | sed '$d' > "$SCRATCH/deflated.list" || fail "deflated.pth failed"
cmp -s "$SCRATCH/stored.list" "$SCRATCH/deflated.list" || fail "deflated.pth lists differently: $(cat "$SCRATCH/deflated.list")"
echo "ok: zip64 and deflated entries"

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
