-- affine_into_conv is exact: a BatchNorm that fold_bn leaves as a per-channel affine (its input has
-- another use), folded into the unpadded conv after it, gives the same output (reference
-- interpreter, random weights, random BN statistics) over kernel sizes, strides, dilations, groups
-- and bias; and it leaves a padded conv, an affine with another use and an affine with an activation.
local nn = require 'nn'
local cases = require 'tests.unit.reparam_cases'
local fold_bn = require 'passes.fold_bn'
local affine_into_conv = require 'passes.affine_into_conv'

-- x -> BN -> [relu] -> conv (-> BN) + shortcut(x) [+ a second use of the BN's output]
local function model(o, relu_between, extra_use, post_bn)
  local m = nn.Module('Case')
  m.pre_norm = nn.BatchNorm2d(8, { eps = 1e-3 })
  m.conv = nn.Conv2d(8, 8, o.k or 1, o)
  if post_bn then m.bn = nn.BatchNorm2d(8) end
  m.short = nn.Conv2d(8, 8, o.k or 1, o)
  function m:forward(x)
    local y = self.pre_norm(x)
    if relu_between then y = nn.relu(y) end
    local z = self.conv(y)
    if self.bn then z = nn.gelu(self.bn(z)) end
    z = z + self.short(x)
    if extra_use then z = z + nn.max_pool2d(y, 1) end
    return z
  end
  return m
end

local function folded(m, seed)
  local rel, after = cases.before_after(m, { 1, 8, 11, 9 }, seed, { fold_bn, affine_into_conv })
  assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
  return cases.count(after, 'batchnorm') == 0 and cases.count(after, 'conv2d') == 2
end

describe('affine_into_conv', function()
  local seed = 0
  for _, k in ipairs({ 1, 3 }) do
    for _, stride in ipairs({ 1, 2 }) do
      for _, groups in ipairs({ 1, 2, 8 }) do
        for _, bias in ipairs({ true, false }) do
          seed = seed + 1
          local s = seed
          it(string.format('BN before a %dx%d s%d g%d conv (bias %s), a BN after it', k, k, stride, groups, tostring(bias)), function()
            local m = model({ k = k, stride = stride, groups = groups, bias = bias, dilation = k == 3 and 2 or 1 }, false, false, true)
            assert.is_true(folded(m, s))
          end)
        end
      end
    end
  end

  it('leaves a padded conv, an affine read twice and an affine with an activation', function()
    assert.is_false(folded(model({ k = 3, padding = 1 }), 50))
    assert.is_false(folded(model({ k = 1 }, false, true), 51))
    assert.is_false(folded(model({ k = 1 }, true), 52))
  end)
end)
