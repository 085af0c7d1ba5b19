-- partition_add: RepMLP's global perceptron adds one value per channel and partition to the map
-- (Ding et al., "RepMLP", 2021: inputs.reshape(N, C, hp, h, wp, w) + v.reshape(N, C, hp, 1, wp, 1)):
--   y[c, Y, X] = x[c, Y, X] + v[c*hp*wp + (Y / h)*wp + X / w]        (attrs.block = {h, w}; v [1, C*hp*wp])
local ops = require 'ops'
local tensor = require 'tensor'
local lower = require 'lower'

local partition_add = {}

function partition_add.shape(node, shapes)
  local x, v, b = shapes[1], shapes[2], node.attrs.block
  ops.expect_rank(x, { [4] = true }, 'partition_add')
  if x[3] % b[1] ~= 0 or x[4] % b[2] ~= 0 then
    error(string.format('a %dx%d map does not split into %dx%d partitions', x[3], x[4], b[1], b[2]), 0)
  end
  local n = x[2] * (x[3] / b[1]) * (x[4] / b[2])
  if #v ~= 2 or v[2] ~= n then
    error(string.format('expects one value per channel and partition, [1, %d], got %s', n, table.concat(v, 'x')), 0)
  end
  return x
end

function partition_add.macs() return 0 end

function partition_add.eval(node, inputs)
  local x, v, h, w = inputs[1], inputs[2], node.attrs.block[1], node.attrs.block[2]
  local _, c, H, W = unpack(x.shape)
  local hp, wp = H / h, W / w
  local y = tensor.new(x.shape)
  for ch = 0, c - 1 do
    for Y = 0, H - 1 do
      for X = 0, W - 1 do
        local i = (ch * H + Y) * W + X
        y.data[i] = x.data[i] + v.data[(ch * hp + math.floor(Y / h)) * wp + math.floor(X / w)]
      end
    end
  end
  return y
end

-- Backend: compiler/halide/partition.cpp's partition_add.
function partition_add.lower(node, L)
  local x, v, y = node.inputs[1], node.inputs[2], node.outputs[1]
  local b = node.attrs.block
  return 'partition_add', { channels = x.shape[2], bh = b[1], bw = b[2], hp = x.shape[3] / b[1], wp = x.shape[4] / b[2] },
    { L:act(x, lower.act_dims(x.shape)), L:act(v, lower.flat_dims(v.shape)), L:act(y, lower.act_dims(y.shape)) }
end

return partition_add
