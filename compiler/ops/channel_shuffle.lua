-- channel_shuffle (ShuffleNet, Zhang et al., CVPR 2018; ShuffleNetV2, Ma et al., ECCV 2018): of a
-- map X of C = groups * K channels, y[c] = X[(c % groups) * K + c // groups] (torchvision's
-- view(g, K) / transpose / view). With several inputs (passes/fuse_shuffle.lua), X is their
-- concatenation along channels: ShuffleNetV2's cat + shuffle in one kernel (halide/shuffle.cpp),
-- reading the two halves where they are (one may be a channel slice, in_cs) and writing y once.
local ops = require 'ops'
local tensor = require 'tensor'
local lower = require 'lower'

local channel_shuffle = {}

function channel_shuffle.shape(node, shapes)
  local first, c = shapes[1], 0
  for i, s in ipairs(shapes) do
    ops.expect_rank(s, { [4] = true }, 'channel_shuffle')
    if s[3] ~= first[3] or s[4] ~= first[4] then
      error(string.format('input %d has shape %s; every input must be Cx%dx%d', i, table.concat(s, 'x'), first[3], first[4]), 0)
    end
    c = c + s[2]
  end
  if c % node.attrs.groups ~= 0 then
    error(string.format('groups=%d does not divide the %d channels', node.attrs.groups, c), 0)
  end
  return { first[1], c, first[3], first[4] }
end

function channel_shuffle.macs() return 0 end

function channel_shuffle.eval(node, inputs)
  local y = tensor.new(node.outputs[1].shape)
  local _, c, h, w = unpack(y.shape)
  local hw, g = h * w, node.attrs.groups
  local k = c / g
  local x = {} -- the concatenation's channels: x[ch + 1] = { tensor, its channel }
  for _, t in ipairs(inputs) do
    for ch = 0, t.shape[2] - 1 do x[#x + 1] = { t, ch } end
  end
  for ch = 0, c - 1 do
    local src = x[(ch % g) * k + math.floor(ch / g) + 1]
    for i = 0, hw - 1 do y.data[ch * hw + i] = src[1].data[src[2] * hw + i] end
  end
  return y
end

function channel_shuffle.lower(node, L)
  local y = node.outputs[1]
  local a, b = node.inputs[1], node.inputs[2]
  if #node.inputs > 2 or (b and node.attrs.groups ~= 2) then
    error(string.format('%s: a channel shuffle of %d joined maps in %d groups has no kernel yet (2 in 2 groups)',
      node.where or node.module or '?', #node.inputs, node.attrs.groups), 0)
  end
  local args = { L:act(a, lower.act_dims(a.shape)) }
  if b then args[2] = L:act(b, lower.act_dims(b.shape)) end
  args[#args + 1] = L:act(y, lower.act_dims(y.shape))
  return 'channel_shuffle', { c = y.shape[2], w = y.shape[4], h = y.shape[3], groups = node.attrs.groups,
    parts = #node.inputs, in_cs = L:row_channels_of(a), in_cs_b = b and L:row_channels_of(b) or nil }, args
end

return channel_shuffle
