-- channel_scale: y = x * s[c], a learned per-channel scale (layer scale: Touvron et al., "Going
-- deeper with Image Transformers" (CaiT), 2021; ConvNeXt's layer_scale / gamma). c is the channel:
-- dim 2 of a map [1, C, H, W], the last dim of tokens [1, N, C]. The parameter may have any shape of
-- C elements ([C], [C, 1, 1]). No kernel: passes/fold_bn.lua folds it into the conv or linear that
-- produces x, as it folds a BatchNorm (W' = s W, b' = s b).
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
  local s, scale, shift = params[node.params.scale].data, {}, {}
  for c = 0, node.attrs.n - 1 do scale[c], shift[c] = s[c], 0 end
  return scale, shift
end

function channel_scale.eval(node, inputs, params)
  local x = inputs[1]
  local s = params[node.params.scale].data
  local y = tensor.new(x.shape)
  local n = node.attrs.n
  local inner = #x.shape == 4 and x.shape[3] * x.shape[4] or 1
  for i = 0, x.numel - 1 do y.data[i] = x.data[i] * s[math.floor(i / inner) % n] end
  return y
end

return channel_scale
