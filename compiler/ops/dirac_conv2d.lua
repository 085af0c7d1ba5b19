-- dirac_conv2d: the convolution of a DiracNet v2 training-time block (Zagoruyko & Komodakis,
-- "DiracNets: Training Very Deep Neural Networks Without Skip-Connections", arXiv:1706.00388, 2017;
-- szagoruyko/diracnets' functional define_diracnet), a conv2d whose weight is a parameter expression:
--   W[o] = beta[o] * V[o] / max(||V[o]||_2, 1e-12) + alpha[o] * E[o]
--   y    = conv2d(x, W)                                   (no bias; attrs as ops/conv2d.lua)
-- V the raw weight (params.weight, the reference's `<block>.conv`), the norm over all of V[o]'s
-- cin/groups*kh*kw taps (F.normalize(V.view(no, -1), dim=1)), alpha and beta per output channel, and
-- E the stored dirac delta buffer (`eye<no>_<ni>_<kh>_<kw>`: 1 at the centre tap of [o, i] when
-- o mod n == i mod n, n = min(ni, no)). E is used as stored, exactly as the reference does, so any
-- checkpoint the reference runs gives the same output here. passes/fold_dirac.lua materialises W
-- (weight() below, in double) into a plain conv2d; this op has no kernel of its own.
local ffi = require 'ffi'
local tensor = require 'tensor'
local conv2d = require 'ops.conv2d'

local dirac_conv2d = {}

dirac_conv2d.shape = conv2d.shape
dirac_conv2d.macs = conv2d.macs

-- W as a double kernel { shape = {cout, cin/groups, kh, kw}, data, numel } (passes/reparam.lua's
-- form); the reference's expression, in double.
function dirac_conv2d.weight(node, params)
  local p = node.params
  local V, alpha, beta, E = params[p.weight], params[p.alpha].data, params[p.beta].data, params[p.eye].data
  local cout = V.shape[1]
  local per = V.numel / cout
  local k = { shape = { V.shape[1], V.shape[2], V.shape[3], V.shape[4] }, data = ffi.new('double[?]', V.numel),
              numel = V.numel }
  for o = 0, cout - 1 do
    local ss = 0
    for i = o * per, (o + 1) * per - 1 do ss = ss + V.data[i] * V.data[i] end
    local scale = beta[o] / math.max(math.sqrt(ss), 1e-12)
    for i = o * per, (o + 1) * per - 1 do k.data[i] = V.data[i] * scale + alpha[o] * E[i] end
  end
  return k
end

function dirac_conv2d.eval(node, inputs, params)
  local k = dirac_conv2d.weight(node, params)
  local w = tensor.new(k.shape)
  for i = 0, k.numel - 1 do w.data[i] = k.data[i] end
  local plain = { attrs = node.attrs, params = { weight = 'w' }, outputs = node.outputs }
  return conv2d.eval(plain, inputs, { w = w })
end

return dirac_conv2d
