-- token_slice: y = x[:, start:start+count] ([1, count, D]), or x[:, start] ([1, D]) when squeeze.
-- Tokens are rows of the storage, so the backend gives consumers a view at an offset: no copy.
local ops = require 'ops'
local tensor = require 'tensor'

local token_slice = {}

function token_slice.shape(node, shapes)
  local x, a = shapes[1], node.attrs
  ops.expect_rank(x, { [3] = true }, 'token slice')
  if a.start < 0 or a.count < 1 or a.start + a.count > x[2] then
    error(string.format('tokens [%d, %d) are outside the %d tokens of input %s', a.start, a.start + a.count,
      x[2], table.concat(x, 'x')), 0)
  end
  if a.squeeze then return { x[1], x[3] } end
  return { x[1], a.count, x[3] }
end

function token_slice.macs() return 0 end

function token_slice.eval(node, inputs)
  local x, a = inputs[1], node.attrs
  local d = x.shape[3]
  local y = tensor.new(node.outputs[1].shape)
  for i = 0, a.count * d - 1 do y.data[i] = x.data[a.start * d + i] end
  return y
end

function token_slice.lower(node, L)
  L:alias_view(node.outputs[1], node.inputs[1], node.attrs.start * node.inputs[1].shape[3])
  return nil
end

return token_slice
