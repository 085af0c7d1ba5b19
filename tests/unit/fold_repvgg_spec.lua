-- The RepVGG fold is exact: a RepVGG block (3 branches, random BN statistics) and the one conv the
-- fold puts in its place agree in the reference interpreter to fp32 rounding, across kernel sizes,
-- strides, groups (1, 2, depthwise), paddings and channel counts; and stacked blocks stay at fp32
-- noise through the whole pipeline.
local nn = require 'nn'
local passes = require 'passes'
local fold_repvgg = require 'passes.fold_repvgg'
local cases = require 'tests.unit.reparam_cases'

describe('fold_repvgg', function()
  local seed = 100
  for _, k in ipairs({ 1, 3, 5 }) do
    for _, stride in ipairs({ 1, 2 }) do
      for _, groups in ipairs({ 1, 2, 8 }) do
        for _, extra_pad in ipairs({ 0, 1 }) do
          for _, cout in ipairs({ 8, 16 }) do
            seed = seed + 1
            local s = seed
            local padding = math.floor(k / 2) + extra_pad
            -- the identity branch needs an output the size of the input: padding = k // 2
            if not (extra_pad > 0 and stride == 1 and cout == 8) then
              it(string.format('k%d s%d g%d p%d 8->%d', k, stride, groups, padding, cout), function()
                local block = nn.RepVGGBlock(8, cout, { kernel = k, stride = stride, groups = groups, padding = padding })
                local rel, after = cases.before_after(cases.wrap(block), { 1, 8, 9, 7 }, s, { fold_repvgg })
                assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
                assert.are.equal(0, cases.count(after, 'batchnorm'))
                assert.are.equal(1, cases.count(after, 'conv2d'))
                assert.is_not_nil(after.params['block.rbr_reparam.weight'])
              end)
            end
          end
        end
      end
    end
  end

  it('stacked blocks: error stays at fp32 noise through 12 blocks and the whole pipeline', function()
    local m = nn.Sequential()
    m:add(nn.RepVGGBlock(3, 8, { stride = 2 }))
    for i = 1, 11 do m:add(nn.RepVGGBlock(8, 8, { groups = i % 2 == 0 and 2 or 1 })) end
    local rel, after = cases.before_after(m, { 1, 3, 17, 15 }, 7, { passes })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
    assert.are.equal(12, cases.count(after, 'conv2d'))
    assert.are.equal(0, cases.count(after, 'add') + cases.count(after, 'act') + cases.count(after, 'batchnorm'))
  end)
end)
