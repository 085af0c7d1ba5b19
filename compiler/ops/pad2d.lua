-- pad2d: zero padding of an NCHW map by `pad` pixels on every side (F.pad(x, [p, p, p, p])).
-- Only inside training-time blocks whose fold removes it: DBB's BNAndPadLayer is BN(pad2d(x)), which
-- pads BN's output with the value BN gives a zero input (passes/fold_dbb.lua). No kernel.
local ops = require 'ops'
local tensor = require 'tensor'

local pad2d = {}

function pad2d.shape(node, shapes)
  local x = shapes[1]
  ops.expect_rank(x, { [4] = true }, 'pad2d')
  local p = node.attrs.pad
  return { x[1], x[2], x[3] + 2 * p, x[4] + 2 * p }
end

function pad2d.macs() return 0 end

function pad2d.eval(node, inputs)
  local x, p = inputs[1], node.attrs.pad
  local _, c, h, w = unpack(x.shape)
  local y = tensor.new(node.outputs[1].shape)
  local oh, ow = h + 2 * p, w + 2 * p
  for ch = 0, c - 1 do
    for iy = 0, h - 1 do
      for ix = 0, w - 1 do
        y.data[(ch * oh + iy + p) * ow + ix + p] = x.data[(ch * h + iy) * w + ix]
      end
    end
  end
  return y
end

return pad2d
