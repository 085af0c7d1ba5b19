-- global_avgpool (AdaptiveAvgPool2d(1)): y[c,0,0] = mean_{h,w} x[c,h,w].
local ops = require 'ops'
local tensor = require 'tensor'

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

return global_avgpool
