-- partition_conv2d: a conv2d (stride 1, 'same' zero padding) run on each h x w partition of the map
-- on its own, zero padded at every partition border (RepMLP's local perceptron, Ding et al.,
-- "RepMLP: Re-parameterizing Convolutions into Fully-connected Layers for Image Recognition",
-- 2021: the reference reshapes the map into N*hp*wp partitions [C, h, w] and convolves those):
--   y[o, Y, X] = sum_{ci,ky,kx} W[o,ci,ky,kx] * x[g*Cg+ci, Y-py+ky, X-px+kx]
--                over taps whose input pixel lies in the partition of (Y, X)      (attrs.tile = {h, w})
-- Only inside RepMLP training-time blocks, which passes/fold_repmlp.lua merges into the partition
-- FC; no kernel.
local ffi = require 'ffi'
local ops = require 'ops'
local tensor = require 'tensor'

local partition_conv2d = {}

function partition_conv2d.shape(node, shapes)
  local a, x = node.attrs, shapes[1]
  ops.expect_rank(x, { [4] = true }, 'partition_conv2d')
  if x[2] ~= a.cin then error(string.format('expects %d input channels, got %d', a.cin, x[2]), 0) end
  if x[3] % a.tile[1] ~= 0 or x[4] % a.tile[2] ~= 0 then
    error(string.format('a %dx%d map does not split into %dx%d partitions', x[3], x[4], a.tile[1], a.tile[2]), 0)
  end
  if a.kernel[1] ~= 2 * a.padding[1] + 1 or a.kernel[2] ~= 2 * a.padding[2] + 1 then
    error('needs an odd kernel with padding kernel // 2', 0)
  end
  return { x[1], a.cout, x[3], x[4] }
end

function partition_conv2d.macs(node)
  local a, o = node.attrs, node.outputs[1].shape
  return o[2] * o[3] * o[4] * (a.cin / a.groups) * a.kernel[1] * a.kernel[2]
end

function partition_conv2d.eval(node, inputs, params)
  local a, x = node.attrs, inputs[1]
  local W = params[node.params.weight].data
  local _, cin, H, Wd = unpack(x.shape)
  local cout, kh, kw, py, px, th, tw = a.cout, a.kernel[1], a.kernel[2], a.padding[1], a.padding[2], a.tile[1], a.tile[2]
  local cg, og = cin / a.groups, cout / a.groups
  local acc = ffi.new('double[?]', cout * H * Wd)
  for co = 0, cout - 1 do
    local g = math.floor(co / og)
    for ci = 0, cg - 1 do
      local xc = (g * cg + ci) * H * Wd
      for ky = 0, kh - 1 do
        for kx = 0, kw - 1 do
          local wv = W[((co * cg + ci) * kh + ky) * kw + kx]
          for Y = 0, H - 1 do
            local iy = Y - py + ky
            local y0 = Y - Y % th
            if iy >= y0 and iy < y0 + th then
              for X = 0, Wd - 1 do
                local ix = X - px + kx
                local x0 = X - X % tw
                if ix >= x0 and ix < x0 + tw then
                  local o = (co * H + Y) * Wd + X
                  acc[o] = acc[o] + wv * x.data[xc + iy * Wd + ix]
                end
              end
            end
          end
        end
      end
    end
  end
  local y = tensor.new(node.outputs[1].shape)
  for i = 0, y.numel - 1 do y.data[i] = acc[i] end
  return y
end

return partition_conv2d
