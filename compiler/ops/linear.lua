-- linear: y[r,o] = act( b[o] + sum_i W[o,i] * x[r,i] ) over the last dimension (PyTorch Linear);
-- rows r are the leading dimensions (1 for a CNN head). A following ReLU may be fused (attrs.relu).
local tensor = require 'tensor'

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
      if node.attrs.relu and v < 0 then v = 0 end
      y.data[r * cout + o] = v
    end
  end
  return y
end

return linear
