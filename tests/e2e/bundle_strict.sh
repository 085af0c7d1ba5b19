#!/bin/sh
# A bundle copied out of the checkout builds with make alone (no Halide, LuaJIT or foldc on the
# path), warning-free under gcc and clang with -std=c99 -Wall -Wextra -Werror, through both its
# Makefile and its CMakeLists.txt, and runs; its example program gives one line naming the culprit
# and a non-zero exit for every bad argument, .npy or weights file, and leaves no output behind.
# Usage: bundle_strict.sh FIXTURE
. "$(dirname "$0")/lib.sh"
name=${1:-diracnet18_w8}
"$FOLDC" build "$FIXTURES/fixtures.lua:$name" --weights "$FIXTURES/data/$name.safetensors" -o "$SCRATCH/bundle"
for cc in gcc clang; do
  rm -rf "$SCRATCH/copy" && cp -r "$SCRATCH/bundle" "$SCRATCH/copy"
  env -i PATH=/usr/bin:/bin make -s -C "$SCRATCH/copy" CC=$cc CFLAGS="-O2 -Werror" || fail "make with $cc"
  "$SCRATCH/copy/${name}_main" --weights "$SCRATCH/copy/$name.weights" \
    --input "$FIXTURES/data/$name.input.npy" --output "$SCRATCH/out.npy" > /dev/null || fail "run with $cc"
  luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$FIXTURES/data/$name.output.npy" 1e-4
  rm -rf "$SCRATCH/cmake"
  CC=$cc cmake -S "$SCRATCH/copy" -B "$SCRATCH/cmake" -DCMAKE_C_FLAGS="-Wall -Wextra -Werror" > /dev/null || fail "cmake with $cc"
  cmake --build "$SCRATCH/cmake" > /dev/null || fail "cmake build with $cc"
  "$SCRATCH/cmake/${name}_main" --weights "$SCRATCH/copy/$name.weights" > /dev/null || fail "cmake-built run with $cc"
done

rm -f "$SCRATCH/out.npy"
main="$SCRATCH/copy/${name}_main"
weights="$SCRATCH/copy/$name.weights"
input="$FIXTURES/data/$name.input.npy"
# expect_main WHAT EXPECTED-SUBSTRING main-args...
expect_main() {
  what=$1; want=$2; shift 2
  if "$main" "$@" > /dev/null 2> "$SCRATCH/err"; then fail "$what: accepted"; fi
  lines=$(wc -l < "$SCRATCH/err")
  [ "$lines" -eq 1 ] || fail "$what: expected one line on stderr, got $lines: $(cat "$SCRATCH/err")"
  grep -qF -- "$want" "$SCRATCH/err" || fail "$what: stderr does not say '$want': $(cat "$SCRATCH/err")"
  [ -z "$(ls "$SCRATCH" | grep '^out')" ] || fail "$what: left $(ls "$SCRATCH" | grep '^out') behind"
  echo "ok: $what -> $(cat "$SCRATCH/err")"
}
# hostile .npy files made from the fixture's input (version 1.0, header at byte 10)
luajit - "$input" "$SCRATCH" <<'LUA'
local src, dir = arg[1], arg[2]
local f = assert(io.open(src, 'rb')); local b = f:read('*a'); f:close()
local hlen = b:byte(9) + 256 * b:byte(10)
local header, data = b:sub(11, 10 + hlen), b:sub(11 + hlen)
local function put(name, bytes) local o = assert(io.open(dir .. '/' .. name, 'wb')); o:write(bytes); o:close() end
local function npy(h, d) -- version 1.0 with header h (padded) and data d
  h = h .. string.rep(' ', (64 - (10 + #h + 1) % 64) % 64) .. '\n'
  return '\147NUMPY\1\0' .. string.char(#h % 256, math.floor(#h / 256)) .. h .. d
end
local shape = header:match("'shape': %(([^)]*)%)")
local dims = {}; for d in shape:gmatch('%d+') do dims[#dims + 1] = d end
put('nhwc.npy', npy(header:gsub('%b()', '(' .. dims[1] .. ', ' .. dims[3] .. ', ' .. dims[4] .. ', ' .. dims[2] .. ')'), data))
put('truncated.npy', b:sub(1, #b - 6))
put('extra.npy', b .. '\0\0\0\0')
put('f8.npy', npy(header:gsub('<f4', '<f8'), data .. data))
put('fortran.npy', npy(header:gsub('False', 'True'), data))
put('nokey.npy', npy("{'descr': '<f4', 'shape': (" .. shape .. '), }', data))
put('dupkey.npy', npy("{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (" .. shape .. '), }', data))
put('liar.npy', b:sub(1, 8) .. '\255\255' .. b:sub(11, 200))
put('huge.npy', '\147NUMPY\2\0\255\255\255\255' .. header)
put('v9.npy', '\147NUMPY\9\0' .. b:sub(9))
put('text.npy', 'just some text\n')
put('short.weights', 'FOLDCWTS')
LUA
cp "$weights" "$SCRATCH/reserved.weights"
printf '\001' | dd of="$SCRATCH/reserved.weights" bs=1 seek=47 conv=notrunc 2> /dev/null
mkdir "$SCRATCH/adir"
w="--weights $weights"
expect_main 'missing input' "cannot open $SCRATCH/nothere.npy: No such file" $w --input "$SCRATCH/nothere.npy"
expect_main 'NHWC input' 'the model expects' $w --input "$SCRATCH/nhwc.npy"
expect_main 'truncated data' 'truncated' $w --input "$SCRATCH/truncated.npy"
expect_main 'data after the tensor' 'data past' $w --input "$SCRATCH/extra.npy"
expect_main 'float64 input' "dtype '<f8'" $w --input "$SCRATCH/f8.npy"
expect_main 'Fortran order' 'fortran_order' $w --input "$SCRATCH/fortran.npy"
expect_main 'header without fortran_order' 'malformed .npy header' $w --input "$SCRATCH/nokey.npy"
expect_main 'duplicate header key' 'malformed .npy header' $w --input "$SCRATCH/dupkey.npy"
expect_main 'header longer than the file' 'truncated .npy header' $w --input "$SCRATCH/liar.npy"
expect_main 'huge header length' 'header of 4294967295 bytes' $w --input "$SCRATCH/huge.npy"
expect_main 'npy version 9' 'version 9' $w --input "$SCRATCH/v9.npy"
expect_main 'not a .npy' 'not a .npy file' $w --input "$SCRATCH/text.npy"
expect_main 'directory as input' "cannot read $SCRATCH/adir: Is a directory" $w --input "$SCRATCH/adir"
expect_main 'output in a missing folder' "cannot write $SCRATCH/out/y.npy: No such file" $w --output "$SCRATCH/out/y.npy"
expect_main 'output onto a folder' "cannot write $SCRATCH/adir" $w --output "$SCRATCH/adir"
[ -z "$(ls "$SCRATCH" | grep '^adir.tmp')" ] || fail "output onto a folder left a temporary file"
expect_main 'missing weights' "cannot open $SCRATCH/nothere.weights: No such file" --weights "$SCRATCH/nothere.weights"
expect_main 'weights of the wrong size' "short.weights: 8 bytes" --weights "$SCRATCH/short.weights"
expect_main 'directory as weights' 'not a regular file' --weights "$SCRATCH/adir"
expect_main 'reserved header bytes set' 'reserved bytes 40-63' --weights "$SCRATCH/reserved.weights"
expect_main '--runs 0' "--runs '0'" $w --runs 0
expect_main '--runs -3' "--runs '-3'" $w --runs -3
expect_main '--runs abc' "--runs 'abc'" $w --runs abc
expect_main '--runs 1e3' "--runs '1e3'" $w --runs 1e3
expect_main '--threads -1' "--threads '-1'" $w --threads -1
expect_main '--threads 257' "--threads '257'" $w --threads 257
expect_main '--threads 99999999999999999999' "--threads '99999999999999999999'" $w --threads 99999999999999999999
expect_main '--peak nan' "--peak 'nan'" $w --peak nan
expect_main '--runs without a value' '--runs needs a value' $w --runs
expect_main 'unknown option' "unknown option '--bogus'" $w --bogus
"$main" $w --threads 0 --runs 1 | grep -q "thread(s)" || fail "--threads 0 (one per core)"
echo "ok: $name builds warning-free with gcc and clang (make and cmake) and matches PyTorch"
