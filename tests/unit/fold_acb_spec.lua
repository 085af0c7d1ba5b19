-- The ACB fold is exact: an Asymmetric Convolution Block (kxk, kx1, 1xk, each with a BN with random
-- statistics) and the one conv the fold puts in its place agree in the reference interpreter to
-- fp32 rounding, across kernel sizes, strides, groups (1, 2, depthwise), paddings (including the
-- reference's crop case, padding 0) and channel counts; stacked blocks stay at fp32 noise.
local nn = require 'nn'
local passes = require 'passes'
local fold_acb = require 'passes.fold_acb'
local cases = require 'tests.unit.reparam_cases'

describe('fold_acb', function()
  local seed = 300
  for _, k in ipairs({ 3, 5 }) do
    for _, stride in ipairs({ 1, 2 }) do
      for _, groups in ipairs({ 1, 2, 8 }) do
        for _, padding in ipairs({ 0, math.floor(k / 2), math.floor(k / 2) + 1 }) do
          for _, cout in ipairs({ 8, 16 }) do
            seed = seed + 1
            local s = seed
            it(string.format('k%d s%d g%d p%d 8->%d', k, stride, groups, padding, cout), function()
              local block = nn.ACBlock(8, cout, k, { stride = stride, groups = groups, padding = padding, relu = true })
              local rel, after = cases.before_after(cases.wrap(block), { 1, 8, 11, 9 }, s, { fold_acb })
              assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
              assert.are.equal(0, cases.count(after, 'batchnorm') + cases.count(after, 'crop2d'))
              assert.are.equal(1, cases.count(after, 'conv2d'))
              assert.is_not_nil(after.params['block.fused_conv.weight'])
            end)
          end
        end
      end
    end
  end

  it('stacked blocks: error stays at fp32 noise through 10 blocks and the whole pipeline', function()
    local m = nn.Sequential()
    m:add(nn.ACBlock(3, 8, 3, { stride = 2, padding = 1, relu = true }))
    for i = 1, 9 do m:add(nn.ACBlock(8, 8, 3, { padding = 1, groups = i % 2 == 0 and 2 or 1, relu = true })) end
    local rel, after = cases.before_after(m, { 1, 3, 17, 15 }, 9, { passes })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
    assert.are.equal(10, cases.count(after, 'conv2d'))
  end)
end)
