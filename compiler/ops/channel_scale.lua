-- channel_scale: y = x * s[c] + t[c], a per-channel affine: a learned scale (layer scale: Touvron et
-- al., "Going deeper with Image Transformers" (CaiT), 2021; ConvNeXt's layer_scale / gamma; params.scale,
-- any shape of C elements such as [C] or [C, 1, 1], t = 0) or constants (attrs.scale, attrs.shift:
-- e.g. Inception v3's transform_input). c is the channel: dim 2 of a map [1, C, H, W], the last dim of
-- tokens [1, N, C]. No kernel: passes/fold_bn.lua folds it into the conv or linear that produces x,
-- as it folds a BatchNorm (W' = s W, b' = s b + t), or makes it a depthwise 1x1 conv.
local tensor = require 'tensor'

local channel_scale = {}

local function channels(shape) return #shape == 4 and shape[2] or shape[#shape] end

function channel_scale.shape(node, shapes)
  local x = shapes[1]
  if #x ~= 4 and #x ~= 3 and #x ~= 2 then
    error('expects a map [1, C, H, W] or tokens [1, N, C], got ' .. table.concat(x, 'x'), 0)
  end
  if channels(x) ~= node.attrs.n then
    error(string.format('%d scales for %d channels (input %s)', node.attrs.n, channels(x), table.concat(x, 'x')), 0)
  end
  return x
end

function channel_scale.macs() return 0 end

-- Per-channel scale and shift (0), as batchnorm.affine gives them.
function channel_scale.affine(node, params)
  local a, scale, shift = node.attrs, {}, {}
  local s = node.params.scale and params[node.params.scale].data
  for c = 0, a.n - 1 do
    scale[c] = s and s[c] or a.scale[c + 1]
    shift[c] = a.shift and a.shift[c + 1] or 0
  end
  return scale, shift
end

function channel_scale.eval(node, inputs, params)
  local x = inputs[1]
  local scale, shift = channel_scale.affine(node, params)
  local y = tensor.new(x.shape)
  local n = node.attrs.n
  local inner = #x.shape == 4 and x.shape[3] * x.shape[4] or 1
  for i = 0, x.numel - 1 do
    local c = math.floor(i / inner) % n
    y.data[i] = x.data[i] * scale[c] + shift[c]
  end
  return y
end

return channel_scale
