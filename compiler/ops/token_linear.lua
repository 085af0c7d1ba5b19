-- token_linear: a Linear over the token axis of x [1, N, C] (PyTorch: Linear(N, M) applied to
-- x.transpose(1, 2), transposed back), its epilogue fused:
--   y[o, c] = act( b[o] + sum_n W[o, n] x[n, c] ) (+ res[o, c]),  y: [1, M, C]
-- MLP-Mixer's token-mixing MLP (Tolstikhin et al. 2021, eq. 1). In the token-major layout this is
-- the GEMM Y = W X with no transpose at all: passes/fold_token_transpose.lua makes it from a
-- Linear on a transposed view. The kernel is linear_tokens' (halide/linear_tokens.cpp) with the
-- roles swapped: its vectorised "output channels" are the C channels of x (x read in place as the
-- weight panel), its rows the M outputs, its broadcast input the weight W as PyTorch stores it
-- ([M][N]), the bias per row (row_bias).
local activations = require 'activations'
local tensor = require 'tensor'

local token_linear = {}

function token_linear.shape(node, shapes)
  local x = shapes[1]
  if #x ~= 3 or x[2] ~= node.attrs.cin then
    error(string.format('expects tokens [1, %d, C] (a Linear over %d tokens), got %s', node.attrs.cin,
      node.attrs.cin, table.concat(x, 'x')), 0)
  end
  local out = { x[1], node.attrs.cout, x[3] }
  if shapes[2] and table.concat(shapes[2], 'x') ~= table.concat(out, 'x') then
    error('residual shape ' .. table.concat(shapes[2], 'x') .. ' differs from output ' .. table.concat(out, 'x'), 0)
  end
  return out
end

function token_linear.macs(node)
  return node.attrs.cin * node.attrs.cout * node.outputs[1].shape[3]
end

function token_linear.eval(node, inputs, params)
  local x = inputs[1]
  local n, c, m = node.attrs.cin, x.shape[3], node.attrs.cout
  local W = params[node.params.weight].data
  local b = node.params.bias and params[node.params.bias].data
  local res = inputs[2] and inputs[2].data
  local y = tensor.new(node.outputs[1].shape)
  for o = 0, m - 1 do
    for ch = 0, c - 1 do
      local v = b and b[o] or 0
      for i = 0, n - 1 do v = v + W[o * n + i] * x.data[i * c + ch] end
      v = activations.apply(node.attrs.act, v)
      if res then v = v + res[o * c + ch] end
      y.data[o * c + ch] = v
    end
  end
  return y
end

function token_linear.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  local n, m, c = node.attrs.cin, node.attrs.cout, x.shape[3]
  local args = { L:weight(node.params.weight, L.params[node.params.weight], { { n, 1 }, { m, n } }),
                 L:act(x, { { c, 1 }, { n, c }, { 1, n * c } }), L:bias(node, m) }
  if node.inputs[2] then args[#args + 1] = L:act(node.inputs[2], { { c, 1 }, { m, c } }) end
  args[#args + 1] = L:act(y, { { c, 1 }, { m, c } })
  return 'linear_tokens', { cin = n, cout = c, rows = m, act = activations.param(node.attrs.act),
                            residual = node.inputs[2] ~= nil, row_bias = true }, args
end

return token_linear
