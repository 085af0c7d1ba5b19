#!/bin/sh
# NaN propagation through bundles (tests/e2e/nan_propagation.lua): all-NaN in gives all-NaN out, one
# NaN pixel gives NaN where the reference interpreter (PyTorch's rules) does. CNNs (conv + BN +
# ReLU, max-pool with padding, residual add + ReLU, GAP, Linear; act_net's activations, fused and
# alone) with the default convolution algorithms and with every conv direct (exact NaN masks);
# transformers (patch embedding, LayerNorm, attention, GELU MLP, PfLayer's max mixer).
. "$(dirname "$0")/lib.sh"
cnn="fixtures:resnet18_w8 fixtures:conv_bn_relu_k3_s2_p1_3to10 fixtures:maxpool_k3_s2_p1 fixtures:residual_relu_8 fixtures:act_net"
vit="transformers:vit_mini transformers:pf_vit_mini_max transformers:max_mixer_49x16"
# shellcheck disable=SC2086
luajit "$FOLDC_ROOT/tests/e2e/nan_propagation.lua" $cnn $vit || fail "NaN propagation"
# shellcheck disable=SC2086
FOLDC_CONV_ALGO=direct luajit "$FOLDC_ROOT/tests/e2e/nan_propagation.lua" fixtures:resnet18_w8 fixtures:act_net \
  || fail "NaN propagation (direct convolutions)"
echo "ok: NaN propagates through the bundles as in PyTorch"
