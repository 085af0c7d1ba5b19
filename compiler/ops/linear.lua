-- linear: y[r,o] = act( b[o] + sum_i W[o,i] * x[r,i] ) over the last dimension (PyTorch Linear);
-- rows r are the leading dimensions (1 for a CNN head). A following activation may be fused
-- (attrs.act, compiler/activations.lua).
local tensor = require 'tensor'
local lower = require 'lower'
local activations = require 'activations'

local linear = {}

function linear.shape(node, shapes)
  local x = shapes[1]
  if #x < 2 then error('expects at least a rank 2 input, got shape ' .. table.concat(x, 'x'), 0) end
  if x[#x] ~= node.attrs.cin then
    error(string.format('expects %d input features, got %d (input shape %s)', node.attrs.cin, x[#x],
      table.concat(x, 'x')), 0)
  end
  local out = {}
  for i = 1, #x - 1 do out[i] = x[i] end
  out[#x] = node.attrs.cout
  return out
end

local function rows(shape)
  local r = 1
  for i = 1, #shape - 1 do r = r * shape[i] end
  return r
end

function linear.macs(node)
  return rows(node.outputs[1].shape) * node.attrs.cin * node.attrs.cout
end

function linear.eval(node, inputs, params)
  local x = inputs[1]
  local cin, cout = node.attrs.cin, node.attrs.cout
  local W = params[node.params.weight].data
  local b = node.params.bias and params[node.params.bias].data
  local y = tensor.new(node.outputs[1].shape)
  for r = 0, rows(x.shape) - 1 do
    for o = 0, cout - 1 do
      local v = b and b[o] or 0
      for i = 0, cin - 1 do v = v + W[o * cin + i] * x.data[r * cin + i] end
      y.data[r * cout + o] = activations.apply(node.attrs.act, v)
    end
  end
  return y
end

-- Backend: the kernel and the argument views (see lower.lua).
function linear.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  local cin, cout = node.attrs.cin, node.attrs.cout
  local W = L.params[node.params.weight]
  local packed = tensor.new({ cin, cout })
  for co = 0, cout - 1 do
    for ci = 0, cin - 1 do packed.data[ci * cout + co] = W.data[co * cin + ci] end
  end
  return 'linear', { cin = cin, cout = cout, rows = tensor.numel(x.shape) / cin, act = activations.param(node.attrs.act) },
    { L:act(x, lower.act_dims(x.shape)), L:weight(node.params.weight .. '@t', packed, { { cout, 1 }, { cin, cout } }),
      L:bias(node, cout), L:act(y, lower.act_dims(y.shape)) }
end

return linear
