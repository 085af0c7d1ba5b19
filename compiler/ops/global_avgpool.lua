-- global_avgpool (AdaptiveAvgPool2d(1)): y[c,0,0] = mean_{h,w} x[c,h,w].
local ops = require 'ops'
local tensor = require 'tensor'
local lower = require 'lower'

local global_avgpool = {}

function global_avgpool.shape(_, shapes)
  ops.expect_rank(shapes[1], { [4] = true }, 'adaptive_avg_pool2d')
  return { shapes[1][1], shapes[1][2], 1, 1 }
end

function global_avgpool.macs() return 0 end

function global_avgpool.eval(node, inputs)
  local x = inputs[1]
  local _, c, h, w = unpack(x.shape)
  local y = tensor.new(node.outputs[1].shape)
  for ch = 0, c - 1 do
    local s = 0
    for i = ch * h * w, (ch + 1) * h * w - 1 do s = s + x.data[i] end
    y.data[ch] = s / (h * w)
  end
  return y
end

-- Backend: the kernel and the argument views (see lower.lua).
function global_avgpool.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  return 'global_avgpool', { c = x.shape[2], in_w = x.shape[4], in_h = x.shape[3] },
    { L:act(x, lower.act_dims(x.shape)), L:act(y, lower.flat_dims(y.shape)) }
end

return global_avgpool
