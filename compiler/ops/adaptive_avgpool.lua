-- adaptive_avgpool (AdaptiveAvgPool2d((OH, OW)), PyTorch's definition): output cell (i, j) is the
-- mean of the input rows [floor(i*H/OH), ceil((i+1)*H/OH)) and columns [floor(j*W/OW),
-- ceil((j+1)*W/OW)); the bins overlap when OH does not divide H, and repeat input cells when OH > H.
-- Output size 1 is global_avgpool. Runs as: a view (no step) when the output is the input's size (VGG
-- at 224x224: 7x7 -> 7x7); pool2d with window = stride = H/OH when OH divides H; otherwise only when
-- passes/fold_adaptive_pool.lua has folded it into the Linear after a flatten (it is linear in its
-- input, so the Linear's weight absorbs it exactly).
local ops = require 'ops'
local tensor = require 'tensor'
local lower = require 'lower'

local adaptive_avgpool = {}

function adaptive_avgpool.shape(node, shapes)
  ops.expect_rank(shapes[1], { [4] = true }, 'adaptive_avg_pool2d')
  local x = shapes[1]
  return { x[1], x[2], node.attrs.out[1], node.attrs.out[2] }
end

function adaptive_avgpool.macs() return 0 end

-- The input range [lo, hi) of output index i of n over an input of size len (0-based).
function adaptive_avgpool.bin(i, n, len)
  return math.floor(i * len / n), math.ceil((i + 1) * len / n)
end
local bin = adaptive_avgpool.bin

function adaptive_avgpool.eval(node, inputs)
  local x = inputs[1]
  local _, c, h, w = unpack(x.shape)
  local oh, ow = node.attrs.out[1], node.attrs.out[2]
  local y = tensor.new(node.outputs[1].shape)
  for ch = 0, c - 1 do
    for i = 0, oh - 1 do
      local y0, y1 = bin(i, oh, h)
      for j = 0, ow - 1 do
        local x0, x1 = bin(j, ow, w)
        local s = 0
        for iy = y0, y1 - 1 do
          for ix = x0, x1 - 1 do s = s + x.data[(ch * h + iy) * w + ix] end
        end
        y.data[(ch * oh + i) * ow + j] = s / ((y1 - y0) * (x1 - x0))
      end
    end
  end
  return y
end

-- Backend: a view when the sizes are equal, the average pool2d kernel when they divide.
function adaptive_avgpool.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  local h, w, oh, ow = x.shape[3], x.shape[4], y.shape[3], y.shape[4]
  if h == oh and w == ow then
    L:alias_view(y, x, 0)
    return
  end
  if h % oh ~= 0 or w % ow ~= 0 then
    error(string.format('%s: adaptive_avg_pool2d from %dx%d to %dx%d (sizes that do not divide) runs only '
      .. 'folded into a flatten + Linear after it, when that makes the Linear smaller; not supported here',
      node.where or node.module or '?', h, w, oh, ow), 0)
  end
  local kh, kw = h / oh, w / ow
  return 'pool2d', {
    c = x.shape[2], in_w = w, in_h = h, out_w = ow, out_h = oh, kw = kw, kh = kh, stride_x = kw, stride_y = kh,
    pad_x = 0, pad_y = 0, op = 'avg', count_include_pad = true, relu = false,
  }, { L:act(x, lower.act_dims(x.shape)), L:act(y, lower.act_dims(y.shape)) }
end

return adaptive_avgpool
