-- pad_tokens: the [1, h w, C] tokens of an h x w map (row-major: the channels-last map) as the
-- tokens of an out_h x out_w map, zeros below and to the right of the input, its rows and columns
-- past out_h, out_w dropped:
--   y[Y out_w + X, c] = x[Y w + X, c]  if Y < h and X < w,  else f[c]
-- (f: params.fill, a [C] vector, else 0: passes/pad_after_linear.lua moves a zero pad after the
-- Linear that follows it, filling with the Linear's bias)
-- i.e. F.pad(x, (0, 0, 0, out_w - w, 0, out_h - h)) on a [1, h, w, C] map (a negative pad crops),
-- as torchvision 0.14's shifted_window_attention pads a Swin map to a multiple of the window
-- (Liu et al. 2021, "Swin Transformer"; torchvision/models/swin_transformer.py) and crops it back
-- (x[:, :h, :w]). A crop of whole rows (out_w = w, out_h <= h) is the first tokens: a view, no
-- step; anything else is the pad_map kernel (compiler/halide/tokens.cpp), one copy.
local ops = require 'ops'
local tensor = require 'tensor'

local pad_tokens = {}

function pad_tokens.shape(node, shapes)
  local x, a = shapes[1], node.attrs
  if #x ~= 3 or x[2] ~= a.h * a.w then
    error(string.format('expects the tokens of a %dx%d map [1, %d, C], got %s', a.h, a.w, a.h * a.w,
      table.concat(x, 'x')), 0)
  end
  ops.int(a.out_h, 1, 'pad_tokens height'); ops.int(a.out_w, 1, 'pad_tokens width')
  return { x[1], a.out_h * a.out_w, x[3] }
end

function pad_tokens.macs() return 0 end

function pad_tokens.eval(node, inputs, params)
  local x, a = inputs[1], node.attrs
  local c = x.shape[3]
  local y = tensor.new(node.outputs[1].shape) -- zeros
  local fill = node.params.fill and params[node.params.fill]
  if fill then
    for t = 0, a.out_h * a.out_w - 1 do
      for ch = 0, c - 1 do y.data[t * c + ch] = fill.data[ch] end
    end
  end
  for Y = 0, math.min(a.h, a.out_h) - 1 do
    for X = 0, math.min(a.w, a.out_w) - 1 do
      local src, dst = (Y * a.w + X) * c, (Y * a.out_w + X) * c
      for ch = 0, c - 1 do y.data[dst + ch] = x.data[src + ch] end
    end
  end
  return y
end

function pad_tokens.lower(node, L)
  local x, y, a = node.inputs[1], node.outputs[1], node.attrs
  if a.out_w == a.w and a.out_h <= a.h then
    L:alias_view(y, x, 0)
    return nil
  end
  local c, key = x.shape[3], node.params.fill
  local args = { L:act(x, { { c, 1 }, { a.w, c }, { a.h, c * a.w } }) }
  if key then args[#args + 1] = L:weight(key, L.params[key], { { c, 1 } }) end
  args[#args + 1] = L:act(y, { { c, 1 }, { a.out_w, c }, { a.out_h, c * a.out_w } })
  return 'pad_map', { c = c, w = a.w, h = a.h, out_w = a.out_w, out_h = a.out_h, fill = key and 1 or nil }, args
end

return pad_tokens
