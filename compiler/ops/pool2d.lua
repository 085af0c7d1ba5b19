-- pool2d: max or average over a kh x kw window with stride and padding (PyTorch MaxPool2d /
-- AvgPool2d, dilation 1). Max pads with -inf and is NaN when a tap of the window is NaN (padding
-- never is). Average divides by the window clipped to the padded
-- input ((hend-hstart)*(wend-wstart), hend = min(hstart+k, H+pad)) when count_include_pad, else by
-- the number of taps inside the input. ceil_mode follows ops.window_out. A following ReLU may be
-- fused (attrs.relu).
local ops = require 'ops'
local tensor = require 'tensor'
local lower = require 'lower'

local pool2d = {}

function pool2d.shape(node, shapes)
  local a, x = node.attrs, shapes[1]
  ops.expect_rank(x, { [4] = true }, a.mode .. '_pool2d')
  for i = 1, 2 do
    if a.padding[i] * 2 > a.kernel[i] then
      error(string.format('padding %d should be at most half of kernel size %d', a.padding[i], a.kernel[i]), 0)
    end
  end
  local oh = ops.window_out(x[3], a.kernel[1], a.stride[1], a.padding[1], 1, a.ceil_mode)
  local ow = ops.window_out(x[4], a.kernel[2], a.stride[2], a.padding[2], 1, a.ceil_mode)
  if oh < 1 or ow < 1 then
    error(string.format('window %dx%d does not fit the %dx%d input', a.kernel[1], a.kernel[2], x[3], x[4]), 0)
  end
  return { x[1], x[2], oh, ow }
end

function pool2d.macs() return 0 end

function pool2d.eval(node, inputs)
  local a, x = node.attrs, inputs[1]
  local _, c, ih, iw = unpack(x.shape)
  local out_shape = node.outputs[1].shape
  local oh, ow = out_shape[3], out_shape[4]
  local kh, kw, sy, sx, py, px = a.kernel[1], a.kernel[2], a.stride[1], a.stride[2], a.padding[1], a.padding[2]
  local y = tensor.new(out_shape)
  for ch = 0, c - 1 do
    for oy = 0, oh - 1 do
      for ox = 0, ow - 1 do
        local y0, x0 = oy * sy - py, ox * sx - px
        local y1, x1 = math.min(y0 + kh, ih + py), math.min(x0 + kw, iw + px)
        local window = (y1 - y0) * (x1 - x0)
        local ya, yb, xa, xb = math.max(y0, 0), math.min(y1, ih), math.max(x0, 0), math.min(x1, iw)
        local v
        if a.mode == 'max' then
          v = -math.huge
          for iy = ya, yb - 1 do
            for ix = xa, xb - 1 do
              -- NaN if any tap is NaN, as PyTorch (LuaJIT's math.max drops NaNs)
              local t = x.data[(ch * ih + iy) * iw + ix]
              if t > v or t ~= t then v = t end
            end
          end
        else
          local s = 0
          for iy = ya, yb - 1 do
            for ix = xa, xb - 1 do s = s + x.data[(ch * ih + iy) * iw + ix] end
          end
          v = s / (a.count_include_pad and window or (yb - ya) * (xb - xa))
        end
        if a.relu and v < 0 then v = 0 end
        y.data[(ch * oh + oy) * ow + ox] = v
      end
    end
  end
  return y
end

-- Backend: the kernel and the argument views (see lower.lua).
function pool2d.lower(node, L)
  local a = node.attrs
  local x, y = node.inputs[1], node.outputs[1]
  return 'pool2d', {
    c = x.shape[2], in_w = x.shape[4], in_h = x.shape[3], out_w = y.shape[4], out_h = y.shape[3],
    kw = a.kernel[2], kh = a.kernel[1], stride_x = a.stride[2], stride_y = a.stride[1],
    pad_x = a.padding[2], pad_y = a.padding[1], op = a.mode,
    count_include_pad = a.count_include_pad and true or false, relu = a.relu and true or false,
    in_cs = L:row_channels_of(x), out_cs = L:row_channels_of(y), -- channel slices (lower.lua)
  }, { L:act(x, lower.act_dims(x.shape)), L:act(y, lower.act_dims(y.shape)) }
end

return pool2d
