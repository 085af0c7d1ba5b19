-- batchnorm (eval): y[c,...] = gamma[c] * (x[c,...] - mean[c]) / sqrt(var[c] + eps) + beta[c]
-- (Ioffe & Szegedy 2015). BatchNorm2d on NCHW, BatchNorm1d on NC or NCL, or (attrs.channels_last) on
-- tokens [1, N, C] as rows (LeViT's BatchNorm1d of x.flatten(0, 1)). passes/fold_bn.lua folds it
-- into the conv/linear before it; one that cannot be folded runs as this per-channel affine.
local ops = require 'ops'
local tensor = require 'tensor'

local batchnorm = {}

function batchnorm.shape(node, shapes)
  local x = shapes[1]
  ops.expect_rank(x, node.attrs.ranks, 'batchnorm')
  local c = node.attrs.channels_last and x[#x] or x[2]
  if c ~= node.attrs.n then
    error(string.format('expects %d channels, got %d (input shape %s)', node.attrs.n, c, table.concat(x, 'x')), 0)
  end
  return x
end

function batchnorm.macs() return 0 end

-- Per-channel scale and shift: y = x * scale + shift. Shared with the folds.
function batchnorm.affine(node, params)
  local n, eps = node.attrs.n, node.attrs.eps
  local p = node.params
  local gamma, beta = p.weight and params[p.weight].data, p.bias and params[p.bias].data
  local mean, var = params[p.running_mean].data, params[p.running_var].data
  local scale, shift = {}, {}
  for c = 0, n - 1 do
    local s = (gamma and gamma[c] or 1) / math.sqrt(var[c] + eps)
    scale[c] = s
    shift[c] = (beta and beta[c] or 0) - mean[c] * s
  end
  return scale, shift
end

function batchnorm.eval(node, inputs, params)
  local x = inputs[1]
  local scale, shift = batchnorm.affine(node, params)
  local y = tensor.new(x.shape)
  local c_count = node.attrs.n
  local inner = node.attrs.channels_last and 1 or x.numel / (x.shape[1] * c_count)
  for i = 0, x.numel - 1 do
    local c = math.floor(i / inner) % c_count
    y.data[i] = x.data[i] * scale[c] + shift[c]
  end
  return y
end

return batchnorm
