#!/bin/sh
# The worked example of models/README.md is what it says: its two code blocks are the committed
# models/examples/my_net.py and my_net.lua byte for byte, and the description matches a checkpoint
# of the PyTorch class (tests/fixtures/make_guide_example.py): foldc weights --diff finds every key,
# foldc run gives PyTorch's output within 1e-4, and so do the deploy-form weights foldc fold writes.
. "$(dirname "$0")/lib.sh"
guide="$FOLDC_ROOT/models/README.md"
desc="$FOLDC_ROOT/models/examples/my_net.lua"
data="$FIXTURES/guide/my_net"

# The fenced block right after "<!-- file: PATH -->" in the guide.
quoted() {
  awk -v marker="<!-- file: $1 -->" '
    $0 == marker { armed = 1; next }
    armed && /^```/ { if (inside) exit; inside = 1; next }
    inside { print }' "$guide"
}
for f in models/examples/my_net.py models/examples/my_net.lua; do
  quoted "$f" > "$SCRATCH/quoted"
  [ -s "$SCRATCH/quoted" ] || fail "models/README.md does not quote $f"
  cmp -s "$SCRATCH/quoted" "$FOLDC_ROOT/$f" || fail "models/README.md's copy of $f differs from the file:
$(diff "$SCRATCH/quoted" "$FOLDC_ROOT/$f" | head -20)"
  echo "ok: models/README.md quotes $f as committed"
done

"$FOLDC" weights "$data.pth" --diff "$desc" > "$SCRATCH/diff" 2>&1 \
  || fail "foldc weights --diff: $(cat "$SCRATCH/diff")"
grep -q '^match: every key present with the expected shape' "$SCRATCH/diff" || fail "no match line: $(cat "$SCRATCH/diff")"
echo "ok: foldc weights --diff finds every key of my_net.pth"

"$FOLDC" run "$desc" --weights "$data.pth" --input "$data.input.npy" --output "$SCRATCH/out.npy" 2> "$SCRATCH/err" \
  || fail "foldc run: $(cat "$SCRATCH/err")"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data.output.npy" 1e-4 || fail "my_net does not match PyTorch"
echo

"$FOLDC" fold "$desc" --weights "$data.pth" -o "$SCRATCH/deploy.safetensors" 2> "$SCRATCH/err" \
  || fail "foldc fold: $(cat "$SCRATCH/err")"
"$FOLDC" run "$desc" --weights "$SCRATCH/deploy.safetensors" --input "$data.input.npy" --output "$SCRATCH/deploy.npy" \
  2> "$SCRATCH/err" || fail "foldc run on the deploy form: $(cat "$SCRATCH/err")"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/deploy.npy" "$data.output.npy" 1e-4 || fail "the deploy form does not match PyTorch"
echo
