-- depth_to_space: the partitions of RepMLP's partition perceptron put back in place (Ding et al.,
-- "RepMLP", 2021: fc3_out.reshape(N, hp, wp, O, h, w).permute(0, 3, 1, 4, 2, 5).reshape(N, O, H, W)),
-- with the partition (i, j) held as pixel (i, j) of a [1, O*h*w, hp, wp] map (PixelShuffle's order):
--   y[o, i*h + dy, j*w + dx] = x[o*h*w + dy*w + dx, i, j]                      (attrs.block = {h, w})
local ops = require 'ops'
local tensor = require 'tensor'
local lower = require 'lower'

local depth_to_space = {}

function depth_to_space.shape(node, shapes)
  local x, b = shapes[1], node.attrs.block
  ops.expect_rank(x, { [4] = true }, 'depth_to_space')
  if x[2] % (b[1] * b[2]) ~= 0 then
    error(string.format('%d channels do not hold %dx%d blocks', x[2], b[1], b[2]), 0)
  end
  return { x[1], x[2] / (b[1] * b[2]), x[3] * b[1], x[4] * b[2] }
end

function depth_to_space.macs() return 0 end

function depth_to_space.eval(node, inputs)
  local x, h, w = inputs[1], node.attrs.block[1], node.attrs.block[2]
  local _, _, hp, wp = unpack(x.shape)
  local y = tensor.new(node.outputs[1].shape)
  local c, H, W = y.shape[2], y.shape[3], y.shape[4]
  for o = 0, c - 1 do
    for Y = 0, H - 1 do
      for X = 0, W - 1 do
        local q = (o * h + Y % h) * w + X % w
        y.data[(o * H + Y) * W + X] = x.data[(q * hp + math.floor(Y / h)) * wp + math.floor(X / w)]
      end
    end
  end
  return y
end

-- Backend: compiler/halide/partition.cpp's depth_to_space.
function depth_to_space.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  local b = node.attrs.block
  return 'depth_to_space', { channels = y.shape[2], bh = b[1], bw = b[2], hp = x.shape[3], wp = x.shape[4] },
    { L:act(x, lower.act_dims(x.shape)), L:act(y, lower.act_dims(y.shape)) }
end

return depth_to_space
