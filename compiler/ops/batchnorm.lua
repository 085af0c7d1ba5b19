-- batchnorm (eval): y[c,...] = gamma[c] * (x[c,...] - mean[c]) / sqrt(var[c] + eps) + beta[c]
-- (Ioffe & Szegedy 2015). BatchNorm2d on NCHW, BatchNorm1d on NC or NCL. passes/fold_bn.lua folds it
-- into the conv/linear before it; one that cannot be folded runs as this per-channel affine.
local ops = require 'ops'
local tensor = require 'tensor'

local batchnorm = {}

function batchnorm.shape(node, shapes)
  local x = shapes[1]
  ops.expect_rank(x, node.attrs.ranks, 'batchnorm')
  if x[2] ~= node.attrs.n then
    error(string.format('expects %d channels, got %d (input shape %s)', node.attrs.n, x[2], table.concat(x, 'x')), 0)
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
  local c_count = x.shape[2]
  local inner = x.numel / (x.shape[1] * c_count)
  for i = 0, x.numel - 1 do
    local c = math.floor(i / inner) % c_count
    y.data[i] = x.data[i] * scale[c] + shift[c]
  end
  return y
end

return batchnorm
