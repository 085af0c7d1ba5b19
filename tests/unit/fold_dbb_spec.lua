-- The DBB fold is exact: a Diverse Branch Block (kxk-BN, 1x1-BN, 1x1-BNAndPad-avg-BN and
-- 1x1(+identity)-BNAndPad-kxk-BN, random BN statistics) and the one conv the fold puts in its place
-- agree in the reference interpreter to fp32 rounding, across kernel sizes, strides, groups
-- (1, 2, depthwise), internal widths (identity-based 1x1 or a plain one) and channel counts; stacked
-- blocks stay at fp32 noise.
local nn = require 'nn'
local passes = require 'passes'
local fold_dbb = require 'passes.fold_dbb'
local cases = require 'tests.unit.reparam_cases'

describe('fold_dbb', function()
  local seed = 500
  for _, k in ipairs({ 3, 5 }) do
    for _, stride in ipairs({ 1, 2 }) do
      for _, groups in ipairs({ 1, 2, 8 }) do
        for _, cout in ipairs({ 8, 16 }) do
          for _, internal in ipairs({ false, 16 }) do
            seed = seed + 1
            local s = seed
            it(string.format('k%d s%d g%d 8->%d internal %s', k, stride, groups, cout, tostring(internal or 'default')), function()
              local block = nn.DiverseBranchBlock(8, cout, k, { stride = stride, groups = groups, relu = true,
                                                                internal = internal or nil })
              local rel, after = cases.before_after(cases.wrap(block), { 1, 8, 11, 9 }, s, { fold_dbb })
              assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
              assert.are.equal(0, cases.count(after, 'batchnorm') + cases.count(after, 'pad2d') + cases.count(after, 'pool2d'))
              assert.are.equal(1, cases.count(after, 'conv2d'))
              assert.is_not_nil(after.params['block.dbb_reparam.weight'])
            end)
          end
        end
      end
    end
  end

  it('stacked blocks: error stays at fp32 noise through 10 blocks and the whole pipeline', function()
    local m = nn.Sequential()
    m:add(nn.DiverseBranchBlock(3, 8, 3, { stride = 2, relu = true }))
    for i = 1, 9 do m:add(nn.DiverseBranchBlock(8, 8, 3, { groups = i % 2 == 0 and 2 or 1, relu = true })) end
    local rel, after = cases.before_after(m, { 1, 3, 17, 15 }, 11, { passes })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
    assert.are.equal(10, cases.count(after, 'conv2d'))
  end)
end)
