-- add: y = a + b (same shape; residual connections), optionally followed by a fused ReLU.
-- passes/fuse_epilogue.lua moves an add into the conv producing one of its operands.
local tensor = require 'tensor'

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
  for i = 0, a.numel - 1 do
    local v = a.data[i] + b.data[i]
    if node.attrs.relu and v < 0 then v = 0 end
    y.data[i] = v
  end
  return y
end

return add
