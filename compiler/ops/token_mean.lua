-- token_mean: y[0, c] = 1/N sum_n x[0, n, c] (x.mean(dim=1); timm's global average of tokens).
local tensor = require 'tensor'
local lower = require 'lower'

local token_mean = {}

function token_mean.shape(_, shapes)
  local x = shapes[1]
  if #x ~= 3 then error('expects tokens [1, N, D], got ' .. table.concat(x, 'x'), 0) end
  return { x[1], x[3] }
end

function token_mean.macs() return 0 end

function token_mean.eval(node, inputs)
  local x = inputs[1]
  local n, d = x.shape[2], x.shape[3]
  local y = tensor.new(node.outputs[1].shape)
  for c = 0, d - 1 do
    local s = 0
    for r = 0, n - 1 do s = s + x.data[r * d + c] end
    y.data[c] = s / n
  end
  return y
end

function token_mean.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  return 'mean_rows', { d = x.shape[3], rows = x.shape[2] },
    { L:act(x, lower.act_dims(x.shape)), L:act(y, lower.act_dims(y.shape)) }
end

return token_mean
