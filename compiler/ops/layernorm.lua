-- layernorm: y[r, c] = (x[r, c] - mean_r) / sqrt(var_r + eps) * w[c] + b[c] over the last dim
-- (PyTorch LayerNorm; var is the biased variance, eps from the module: 1e-6 in ViT/PiT).
local tensor = require 'tensor'
local lower = require 'lower'

local layernorm = {}

function layernorm.shape(node, shapes)
  local x = shapes[1]
  if x[#x] ~= node.attrs.d then
    error(string.format('normalized_shape %d differs from the last dim of input %s', node.attrs.d,
      table.concat(x, 'x')), 0)
  end
  return x
end

function layernorm.macs() return 0 end

function layernorm.eval(node, inputs, params)
  local x, d, eps = inputs[1], node.attrs.d, node.attrs.eps
  local w, b = params[node.params.weight].data, params[node.params.bias].data
  local y = tensor.new(x.shape)
  for r = 0, x.numel / d - 1 do
    local base, s = r * d, 0
    for c = 0, d - 1 do s = s + x.data[base + c] end
    local mean, v = s / d, 0
    for c = 0, d - 1 do local t = x.data[base + c] - mean; v = v + t * t end
    local rstd = 1 / math.sqrt(v / d + eps)
    for c = 0, d - 1 do y.data[base + c] = (x.data[base + c] - mean) * rstd * w[c] + b[c] end
  end
  return y
end

function layernorm.lower(node, L)
  local x, y, d = node.inputs[1], node.outputs[1], node.attrs.d
  return 'layernorm', { d = d, rows = tensor.numel(x.shape) / d, eps = string.format('%.9g', node.attrs.eps) },
    { L:act(x, lower.act_dims(x.shape)), L:weight(node.params.weight, L.params[node.params.weight], { { d, 1 } }),
      L:weight(node.params.bias, L.params[node.params.bias], { { d, 1 } }), L:act(y, lower.act_dims(y.shape)) }
end

return layernorm
