-- flatten (start_dim=1): [1, C, H, W] -> [1, C*H*W] in PyTorch (C-major) order.
local tensor = require 'tensor'

local flatten = {}

function flatten.shape(_, shapes)
  local n = 1
  for i = 2, #shapes[1] do n = n * shapes[1][i] end
  return { shapes[1][1], n }
end

function flatten.macs() return 0 end

function flatten.eval(node, inputs)
  return tensor.new(node.outputs[1].shape, inputs[1].data)
end

return flatten
