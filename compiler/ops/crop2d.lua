-- crop2d: drops `rows` rows at the top and bottom and `cols` columns at the left and right of an
-- NCHW map (ACNet's CropLayer, used when the block's padding is smaller than kernel // 2). Only
-- inside training-time blocks whose fold removes it (passes/fold_acb.lua). No kernel.
local ops = require 'ops'
local tensor = require 'tensor'

local crop2d = {}

function crop2d.shape(node, shapes)
  local x, a = shapes[1], node.attrs
  ops.expect_rank(x, { [4] = true }, 'crop2d')
  if x[3] <= 2 * a.rows or x[4] <= 2 * a.cols then
    error(string.format('cannot crop %d rows and %d columns off a %dx%d map', a.rows, a.cols, x[3], x[4]), 0)
  end
  return { x[1], x[2], x[3] - 2 * a.rows, x[4] - 2 * a.cols }
end

function crop2d.macs() return 0 end

function crop2d.eval(node, inputs)
  local x, a = inputs[1], node.attrs
  local _, c, h, w = unpack(x.shape)
  local y = tensor.new(node.outputs[1].shape)
  local oh, ow = h - 2 * a.rows, w - 2 * a.cols
  for ch = 0, c - 1 do
    for oy = 0, oh - 1 do
      for ox = 0, ow - 1 do
        y.data[(ch * oh + oy) * ow + ox] = x.data[(ch * h + oy + a.rows) * w + ox + a.cols]
      end
    end
  end
  return y
end

return crop2d
