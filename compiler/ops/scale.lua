-- scale: y = x * s for a constant s (e.g. the 1/2 averaging the two heads of a distilled PiT).
local tensor = require 'tensor'
local lower = require 'lower'

local scale = {}

function scale.shape(_, shapes) return shapes[1] end

function scale.macs() return 0 end

function scale.eval(node, inputs)
  local x = inputs[1]
  local y = tensor.new(x.shape)
  for i = 0, x.numel - 1 do y.data[i] = x.data[i] * node.attrs.s end
  return y
end

function scale.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  return 'scale', { n = tensor.numel(x.shape), s = string.format('%.9g', node.attrs.s) },
    { L:act(x, lower.flat_dims(x.shape)), L:act(y, lower.flat_dims(y.shape)) }
end

return scale
