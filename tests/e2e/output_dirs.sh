#!/bin/sh
# Nothing run from user text, nothing left behind: hostile --target strings are refused before
# anything runs; -o must name a new folder or a bundle in a writable folder; concurrent builds into
# one folder take turns; scratch folders of dead builds are swept; foldc killed (SIGKILL, SIGTERM,
# SIGINT) while compiling kernels leaves no process, Makefile or scratch folder behind.
. "$(dirname "$0")/lib.sh"
name=conv_k1_3to10
model="$FIXTURES/fixtures.lua:$name"
build() { "$FOLDC" build "$model" --weights random --no-weights "$@"; }

# refused WHAT WANT foldc-args...: one line on stderr naming WANT, a non-zero exit, and nothing
# created in the folder it runs in ($SCRATCH/cwd)
mkdir "$SCRATCH/cwd"
refused() {
  what=$1; want=$2; shift 2
  if (cd "$SCRATCH/cwd" && "$FOLDC" "$@") > /dev/null 2> "$SCRATCH/err"; then fail "$what: foldc succeeded"; fi
  [ "$(wc -l < "$SCRATCH/err")" -eq 1 ] || fail "$what: not one line: $(cat "$SCRATCH/err")"
  grep -qF -- "$want" "$SCRATCH/err" || fail "$what: stderr does not name '$want': $(cat "$SCRATCH/err")"
  [ -z "$(ls -A "$SCRATCH/cwd")" ] || fail "$what: left $(ls -A "$SCRATCH/cwd")"
  printf 'ok: %s -> %s\n' "$what" "$(cat "$SCRATCH/err")"
}

# --target: the whole string is checked before anything runs, on every verb and in the library
nl='
'
refused 'target with ;' 'character " "' build "$model" --weights random --target 'x86-64-linux-avx2 ; touch PWNED ; #' -o out
refused 'target with $()' 'character "$"' build "$model" --weights random --target 'x86-64-linux-avx2-$(touch PWNED)' -o out
refused 'target with backticks' 'character "`"' build "$model" --weights random --target 'x86-64-linux-avx2-`touch PWNED`' -o out
refused 'target with a newline' 'byte 10' build "$model" --weights random --target "x86-64-linux-avx2${nl}touch PWNED" -o out
refused "target with '" "character \"'\"" build "$model" --weights random --target "x86-64-linux-avx2' ; touch PWNED ; '" -o out
refused 'target with "' "character '\"'" build "$model" --weights random --target 'x86-64-linux-avx2" ; touch PWNED ; "' -o out
refused 'target with |' 'character "|"' check "$model" --weights random --target 'x86-64-linux-avx2|touch PWNED'
refused 'target: unknown os' 'unknown operating system "linuks"' build "$model" --weights random --target x86-64-linuks -o out
refused 'target: empty feature' 'an empty feature' build "$model" --weights random --target x86-64-linux--avx2 -o out
(cd "$SCRATCH/cwd" && luajit -e "package.path = '$FOLDC_ROOT/compiler/?.lua;$FOLDC_ROOT/compiler/?/init.lua;' .. package.path
  local ok, err = pcall(require('kernels').resolve_target, 'x86-64-linux-avx2;touch PWNED')
  assert(not ok and err:find('character \";\"', 1, true), tostring(err))") || fail 'kernels.resolve_target took a bad target'
[ -z "$(ls -A "$SCRATCH/cwd")" ] || fail "kernels.resolve_target: left $(ls -A "$SCRATCH/cwd")"

# -o: refused before any work
refused '-o /' '-o "/": the root folder' build "$model" --weights random -o /
refused "-o ''" '-o "": empty path' build "$model" --weights random -o ''
refused '-o .' '-o ".": names an existing folder' build "$model" --weights random -o .
refused '-o ..' 'names an existing folder' build "$model" --weights random -o "$SCRATCH/cwd/.."
refused '-o with a missing parent' "folder $SCRATCH/missing does not exist" build "$model" --weights random -o "$SCRATCH/missing/out"
touch "$SCRATCH/file"
refused '-o a file' 'exists and is not a folder' build "$model" --weights random -o "$SCRATCH/file"
refused '-o below a file' "$SCRATCH/file is not a folder" build "$model" --weights random -o "$SCRATCH/file/out"

# stale scratch folders of dead builds are swept, a live one is not
sh -c 'exit 0' & dead=$!
wait $dead
mkdir "$SCRATCH/s.tmp.$dead" "$SCRATCH/s.tmp.$dead.old" "$SCRATCH/s.tmp.$$"
touch "$SCRATCH/s.tmp.$dead/half.c"
build -o "$SCRATCH/s" 2> /dev/null || fail "build into a folder with stale scratch folders"
[ -e "$SCRATCH/s/$name.json" ] || fail "stale sweep: no bundle"
[ ! -e "$SCRATCH/s.tmp.$dead" ] && [ ! -e "$SCRATCH/s.tmp.$dead.old" ] || fail "stale scratch folders not swept: $(ls "$SCRATCH")"
[ -d "$SCRATCH/s.tmp.$$" ] || fail "the scratch folder of a live process was swept"
echo "ok: stale scratch folders swept"

# concurrent builds into one folder take turns: all succeed, the bundle is whole, nothing is left
for round in 1 2; do
  pids=
  for i in 1 2 3; do
    build -o "$SCRATCH/c" 2> "$SCRATCH/c_err$i" &
    pids="$pids $!"
  done
  for p in $pids; do wait "$p" || fail "concurrent build (round $round): $(cat "$SCRATCH"/c_err*)"; done
  ! grep -q 'Directory not empty' "$SCRATCH"/c_err* || fail "concurrent builds: $(cat "$SCRATCH"/c_err*)"
  [ -e "$SCRATCH/c/$name.json" ] && [ -e "$SCRATCH/c/lib${name}_kernels.a" ] || fail "concurrent builds: no whole bundle"
  ! ls "$SCRATCH" | grep -q '^c\.tmp' || fail "concurrent builds left $(ls "$SCRATCH" | grep '^c\.tmp')"
done
echo "ok: 2 rounds of 3 concurrent builds into one folder"
# a build waits for the folder's lock (held here by flock(1) for 2 s), then succeeds
flock "$SCRATCH" sh -c "sleep 2; touch '$SCRATCH/released'" &
holder=$!
sleep 0.3
build -o "$SCRATCH/c" 2> /dev/null || fail "build after waiting for the lock"
[ -e "$SCRATCH/released" ] || fail "the build did not wait for the folder's lock"
wait $holder
echo "ok: a build waits for the folder's lock"

# killed while compiling kernels: a fresh cache and a generator that records its arguments and
# never ends (it stands in for a long Halide compile); within a few seconds no process of the build
# runs and nothing is left (the cache keeps only its folders and the finished peak measurement
# program that choosing the nearest schedule records builds; no Makefile in the cache or /tmp)
cat > "$SCRATCH/gen.sh" <<EOF
#!/bin/sh
echo "\$*" >> "$SCRATCH/gen_started"
while :; do sleep 0.1; done
EOF
chmod +x "$SCRATCH/gen.sh"
cache="$SCRATCH/cache"
mkdir -p "$cache/kernels"
mkdir "$cache/kernels/0123456789abcdef.tmp.$dead"
for sig in KILL TERM INT; do
  rm -f "$SCRATCH/gen_started"
  FOLDC_CACHE="$cache" FOLDC_GEN="$SCRATCH/gen.sh" "$FOLDC" build "$model" --weights random --no-weights \
    -o "$SCRATCH/k" 2> "$SCRATCH/k_err" &
  foldc=$!
  n=0
  while ! grep -q '^-g ' "$SCRATCH/gen_started" 2> /dev/null; do
    n=$((n + 1)); [ $n -lt 600 ] || fail "SIG$sig: the generator never started: $(cat "$SCRATCH/k_err")"
    sleep 0.05
  done
  kill -s "$sig" "$foldc"
  if wait "$foldc"; then fail "SIG$sig: foldc succeeded"; fi
  grep -q "^-g conv2d -f foldc_[0-9a-f]* -e object,c_header target=[a-z0-9_-]*-no_runtime-user_context .*-o $cache/kernels/[0-9a-f]*\\.tmp\\.$foldc\$" \
    "$SCRATCH/gen_started" || fail "SIG$sig: the generator's arguments: $(cat "$SCRATCH/gen_started")"
  if [ "$sig" != KILL ]; then
    tail -n 1 "$SCRATCH/k_err" | grep -qx "foldc: interrupted by SIG$sig" || fail "SIG$sig: $(cat "$SCRATCH/k_err")"
  fi
  n=0
  while pgrep -f "$SCRATCH" > /dev/null || [ -n "$(find "$cache" -mindepth 2 ! \( -path "$cache/peak/peak-*" ! -name "*.tmp.*" \))" ]; do
    n=$((n + 1))
    [ $n -lt 60 ] || fail "SIG$sig: left running: $(pgrep -af "$SCRATCH"); left in the cache: $(find "$cache" -mindepth 2 ! \( -path "$cache/peak/peak-*" ! -name "*.tmp.*" \))"
    sleep 0.05
  done
  [ -z "$(grep -ls "$cache" /tmp/lua_* 2> /dev/null)" ] || fail "SIG$sig: a Makefile in /tmp"
  [ -z "$(ls "$SCRATCH" | grep '^k\.tmp')" ] && [ ! -e "$SCRATCH/k" ] || fail "SIG$sig: left $(ls "$SCRATCH")"
  echo "ok: foldc killed by SIG$sig while compiling kernels left nothing (gone $((n * 50)) ms after foldc)"
done
