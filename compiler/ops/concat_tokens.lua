-- concat_tokens: y = cat(a, b, dim=1) for token tensors [1, Na, D] and [1, Nb, D] (class tokens in
-- front of the patch tokens).
local tensor = require 'tensor'
local lower = require 'lower'

local concat_tokens = {}

function concat_tokens.shape(_, shapes)
  local a, b = shapes[1], shapes[2]
  if #a ~= 3 or #b ~= 3 or a[3] ~= b[3] then
    error(string.format('expects token tensors [1, N, D] with the same D, got %s and %s',
      table.concat(a, 'x'), table.concat(b, 'x')), 0)
  end
  return { a[1], a[2] + b[2], a[3] }
end

function concat_tokens.macs() return 0 end

function concat_tokens.eval(node, inputs)
  local a, b = inputs[1], inputs[2]
  local y = tensor.new(node.outputs[1].shape)
  for i = 0, a.numel - 1 do y.data[i] = a.data[i] end
  for i = 0, b.numel - 1 do y.data[a.numel + i] = b.data[i] end
  return y
end

function concat_tokens.lower(node, L)
  local a, b, y = node.inputs[1], node.inputs[2], node.outputs[1]
  return 'concat_rows', { d = a.shape[3], n1 = a.shape[2], n2 = b.shape[2] },
    { L:act(a, lower.act_dims(a.shape)), L:act(b, lower.act_dims(b.shape)), L:act(y, lower.act_dims(y.shape)) }
end

return concat_tokens
