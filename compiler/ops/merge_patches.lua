-- merge_patches: Swin's patch merging before its norm and reduction (Liu et al. 2021, "Swin
-- Transformer", sec. 3.1; torchvision 0.14 / timm v0.4.12 PatchMerging): the [1, h w, C] tokens of
-- an h x w map (row-major) become [1, ceil(h/2) ceil(w/2), 4C], token (Y, X) holding
--   y[Y, X, k C + c] = x[2Y + dy, 2X + dx, c] (0 past the map),  k = dy + 2 dx
-- (torch.cat([x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]], -1)); an odd h or w
-- is padded with a zero row or column first, as torchvision 0.14's _patch_merging_pad does
-- (F.pad(x, (0, 0, 0, w % 2, 0, h % 2))). timm v0.4.12 asserts even sizes: models/swin.lua refuses
-- them for that flavor.
local tensor = require 'tensor'

local merge_patches = {}

function merge_patches.shape(node, shapes)
  local x, h, w = shapes[1], node.attrs.h, node.attrs.w
  if #x ~= 3 or x[2] ~= h * w then
    error(string.format('expects the tokens of a %dx%d map [1, %d, C], got %s', h, w, h * w, table.concat(x, 'x')), 0)
  end
  return { x[1], math.ceil(h / 2) * math.ceil(w / 2), 4 * x[3] }
end

function merge_patches.macs() return 0 end

function merge_patches.eval(node, inputs)
  local x, h, w = inputs[1], node.attrs.h, node.attrs.w
  local c = x.shape[3]
  local y = tensor.new(node.outputs[1].shape) -- zeros
  local h2, w2 = math.ceil(h / 2), math.ceil(w / 2)
  for Y = 0, h2 - 1 do
    for X = 0, w2 - 1 do
      for k = 0, 3 do
        local sy, sx = 2 * Y + k % 2, 2 * X + math.floor(k / 2)
        if sy < h and sx < w then
          local src = (sy * w + sx) * c
          local dst = ((Y * w2 + X) * 4 + k) * c
          for ch = 0, c - 1 do y.data[dst + ch] = x.data[src + ch] end
        end
      end
    end
  end
  return y
end

function merge_patches.lower(node, L)
  local x, y, h, w = node.inputs[1], node.outputs[1], node.attrs.h, node.attrs.w
  local c = x.shape[3]
  return 'merge_patches', { c = c, w = w, h = h },
    { L:act(x, { { c, 1 }, { w, c }, { h, c * w } }),
      L:act(y, { { c, 1 }, { 2, c }, { 2, 2 * c }, { y.shape[2], 4 * c } }) }
end

return merge_patches
