#!/bin/sh
# foldc fold on a training-time RepVGG checkpoint writes the deploy-form weights (the report names
# the blocks folded) which build as the deploy form; a checkpoint of another family, or one whose
# branch lacks its BN, is refused with a one-line error naming the key, and nothing is written.
. "$(dirname "$0")/lib.sh"
name=repvgg_mini_g2
model="$FIXTURES/reparam.lua:$name"
data="$FIXTURES/data"

"$FOLDC" fold "$model" --weights "$data/$name.safetensors" -o "$SCRATCH/deploy.safetensors" 2> "$SCRATCH/report"
grep -q 'repvgg folded 7' "$SCRATCH/report" || fail "fold report: $(cat "$SCRATCH/report")"
grep -q 'params 28.6 K -> 25.2 K, MACs 215.7 K -> 194.2 K' "$SCRATCH/report" || fail "fold report: $(cat "$SCRATCH/report")"
"$FOLDC" run "$model" --weights "$SCRATCH/deploy.safetensors" --input "$data/$name.input.npy" --output "$SCRATCH/out.npy"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data/$name.output.npy" 1e-4

# expect_refusal WHAT EXPECTED-SUBSTRING WEIGHTS
expect_refusal() {
  if "$FOLDC" fold "$model" --weights "$3" -o "$SCRATCH/bad.safetensors" 2> "$SCRATCH/err"; then fail "$1: fold succeeded"; fi
  [ "$(wc -l < "$SCRATCH/err")" -eq 1 ] || fail "$1: expected one line on stderr: $(cat "$SCRATCH/err")"
  grep -qF -- "$2" "$SCRATCH/err" || fail "$1: stderr does not name '$2': $(cat "$SCRATCH/err")"
  ls "$SCRATCH" | grep -q '^bad\.' && fail "$1: left a file behind"
  echo "ok: $1 -> $(cut -c1-200 "$SCRATCH/err")"
}

expect_refusal 'checkpoint of another family' 'does not match repvgg_mini_g2' "$data/resnet18_w8.safetensors"

FOLDC_ROOT="$FOLDC_ROOT" luajit -e "
package.path = '$FOLDC_ROOT/compiler/?.lua;$FOLDC_ROOT/compiler/?/init.lua;' .. package.path
local st = require 'weights.safetensors'
local w = st.read('$data/$name.safetensors')
local list = {}
for _, k in ipairs(w.names) do
  if w.tensors[k].data and not k:match('^stage2%.0%.rbr_1x1%.bn%.') then list[#list + 1] = { name = k, tensor = w.tensors[k] } end
end
st.write('$SCRATCH/no_bn.safetensors', list)"
expect_refusal 'branch missing its BN' 'missing: stage2.0.rbr_1x1.bn.weight [16]' "$SCRATCH/no_bn.safetensors"

# DiracNet v2 training form (functional keys, eye buffers): the folded weights carry the DiracNet
# module's keys and run as its deploy form
name=diracnet18_train_mini
model="$FIXTURES/reparam.lua:$name"
"$FOLDC" fold "$model" --weights "$data/$name.safetensors" -o "$SCRATCH/dirac.safetensors" 2> "$SCRATCH/report"
grep -q 'dirac folded 16, bn folded 17' "$SCRATCH/report" || fail "fold report: $(cat "$SCRATCH/report")"
"$FOLDC" run "$model" --weights "$SCRATCH/dirac.safetensors" --input "$data/$name.input.npy" --output "$SCRATCH/out.npy"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data/$name.output.npy" 1e-4
expect_refusal 'DiracNet checkpoint of the folded module' 'does not match diracnet18_train_mini' "$data/diracnet18_w8.safetensors"

# RepMLP-ResNet: the local perceptrons merged into fc3, the deploy weights (switch_to_deploy's keys)
# build and run as the deploy form
name=repmlp_resnet_mini
model="$FIXTURES/reparam.lua:$name"
"$FOLDC" fold "$model" --weights "$data/$name.safetensors" -o "$SCRATCH/repmlp.safetensors" 2> "$SCRATCH/report"
grep -q 'repmlp folded 2' "$SCRATCH/report" || fail "fold report: $(cat "$SCRATCH/report")"
"$FOLDC" run "$model" --weights "$SCRATCH/repmlp.safetensors" --input "$data/$name.input.npy" --output "$SCRATCH/out.npy"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data/$name.output.npy" 1e-4

# MobileOne (depthwise and pointwise blocks, 4 conv branches): reparameterize_model's keys, which
# build and run as the deploy form
name=mobileone_mini
model="$FIXTURES/reparam.lua:$name"
"$FOLDC" fold "$model" --weights "$data/$name.safetensors" -o "$SCRATCH/mobileone.safetensors" 2> "$SCRATCH/report"
grep -q 'mobileone folded 13' "$SCRATCH/report" || fail "fold report: $(cat "$SCRATCH/report")"
"$FOLDC" run "$model" --weights "$SCRATCH/mobileone.safetensors" --input "$data/$name.input.npy" --output "$SCRATCH/out.npy"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data/$name.output.npy" 1e-4

# and with squeeze-excitation: se.reduce / se.expand kept as they are
name=mobileone_mini_se
model="$FIXTURES/reparam.lua:$name"
"$FOLDC" fold "$model" --weights "$data/$name.safetensors" -o "$SCRATCH/mobileone_se.safetensors" 2> "$SCRATCH/report"
grep -q 'mobileone folded 13' "$SCRATCH/report" || fail "fold report: $(cat "$SCRATCH/report")"
"$FOLDC" run "$model" --weights "$SCRATCH/mobileone_se.safetensors" --input "$data/$name.input.npy" --output "$SCRATCH/out.npy"
luajit "$FIXTURES/check_output.lua" "$SCRATCH/out.npy" "$data/$name.output.npy" 1e-4
