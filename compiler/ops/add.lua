-- add: y = act(a + b) (same shape; residual connections), act a fused activation (attrs.act,
-- compiler/activations.lua) or none.
-- passes/fuse_epilogue.lua moves an add into the conv producing one of its operands.
local tensor = require 'tensor'
local lower = require 'lower'
local activations = require 'activations'

local add = {}

function add.shape(_, shapes)
  local a, b = table.concat(shapes[1], 'x'), table.concat(shapes[2], 'x')
  if a ~= b then error('operand shapes differ: ' .. a .. ' vs ' .. b, 0) end
  return shapes[1]
end

function add.macs() return 0 end

function add.eval(node, inputs)
  local a, b = inputs[1], inputs[2]
  local y = tensor.new(a.shape)
  local act = node.attrs.act
  for i = 0, a.numel - 1 do y.data[i] = activations.apply(act, a.data[i] + b.data[i]) end
  return y
end

-- Backend: the kernel and the argument views (see lower.lua).
function add.lower(node, L)
  local a, b, y = node.inputs[1], node.inputs[2], node.outputs[1]
  local n = tensor.numel(y.shape)
  return 'eltwise', { n = n, op = 'add', act = activations.param(node.attrs.act) },
    { L:act(a, lower.flat_dims(a.shape)), L:act(b, lower.flat_dims(b.shape)), L:act(y, lower.flat_dims(y.shape)) }
end

return add
