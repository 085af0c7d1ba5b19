-- channel_slice: y = x[:, start:start+count] of a feature map (x.chunk's pieces). A view: its
-- consumers read x's buffer at a channel offset with x's pixel stride (lower.lua's channel slices,
-- the kernels' in_cs), no copy.
local ops = require 'ops'
local tensor = require 'tensor'

local channel_slice = {}

function channel_slice.shape(node, shapes)
  local x, a = shapes[1], node.attrs
  ops.expect_rank(x, { [4] = true }, 'channel slice')
  if a.start < 0 or a.count < 1 or a.start + a.count > x[2] then
    error(string.format('channels [%d, %d) are outside the %d channels of input %s', a.start, a.start + a.count,
      x[2], table.concat(x, 'x')), 0)
  end
  return { x[1], a.count, x[3], x[4] }
end

function channel_slice.macs() return 0 end

function channel_slice.eval(node, inputs)
  local x, a = inputs[1], node.attrs
  local hw = x.shape[3] * x.shape[4]
  local y = tensor.new(node.outputs[1].shape)
  for i = 0, a.count * hw - 1 do y.data[i] = x.data[a.start * hw + i] end
  return y
end

function channel_slice.lower(node, L)
  L:channel_view(node.outputs[1], node.inputs[1], node.attrs.start)
end

return channel_slice
