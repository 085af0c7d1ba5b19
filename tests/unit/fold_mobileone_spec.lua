-- The MobileOne fold is exact: a MobileOne block (n kxk conv-BN branches, the 1x1 scale branch, the
-- BN identity; random BN statistics) and the one conv the fold puts in its place agree in the
-- reference interpreter to fp32 rounding, over kernels 1, 3 and 5, strides 1 and 2, dense, grouped
-- and depthwise blocks, with and without the identity, and 1 to 4 conv branches; a stack of
-- depthwise / pointwise pairs stays at fp32 noise through the whole pipeline; and the refusals name
-- the block.
local nn = require 'nn'
local passes = require 'passes'
local fold_mobileone = require 'passes.fold_mobileone'
local cases = require 'tests.unit.reparam_cases'

describe('fold_mobileone', function()
  local seed = 300
  for _, k in ipairs({ 1, 3, 5 }) do
    for _, stride in ipairs({ 1, 2 }) do
      for _, groups in ipairs({ 1, 2, 8 }) do
        for _, cout in ipairs({ 8, 16 }) do
          for branches = 1, 4 do
            seed = seed + 1
            local s = seed
            -- depthwise (groups = cin = cout) only with cout 8
            if not (groups == 8 and cout ~= 8) then
              local identity = cout == 8 and stride == 1
              it(string.format('k%d s%d g%d 8->%d, %d branches%s', k, stride, groups, cout, branches,
                identity and ', identity' or ''), function()
                local block = nn.MobileOneBlock(8, cout, k, { stride = stride, groups = groups, num_conv_branches = branches })
                local rel, after = cases.before_after(cases.wrap(block), { 1, 8, 9, 7 }, s, { fold_mobileone })
                assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
                assert.are.equal(0, cases.count(after, 'batchnorm') + cases.count(after, 'add'))
                assert.are.equal(1, cases.count(after, 'conv2d'))
                local w = after.params['block.reparam_conv.weight']
                assert.are.same({ cout, 8 / groups, k, k }, w.shape)
                assert.is_not_nil(after.params['block.reparam_conv.bias'])
              end)
            end
          end
        end
      end
    end
  end

  it('stacked depthwise / pointwise pairs: fp32 noise through 12 blocks and the whole pipeline', function()
    local m = nn.Sequential()
    m:add(nn.MobileOneBlock(3, 8, 3, { stride = 2 }))
    local cin = 8
    for i, cout in ipairs({ 8, 8, 16, 8, 8 }) do
      m:add(nn.MobileOneBlock(cin, cin, 3, { stride = i == 2 and 2 or 1, groups = cin, num_conv_branches = 4 }))
      m:add(nn.MobileOneBlock(cin, cout, 1, { num_conv_branches = 4 }))
      cin = cout
    end
    m:add(nn.MobileOneBlock(8, 8, 3, { groups = 8 }))
    local rel, after = cases.before_after(m, { 1, 3, 17, 15 }, 9, { passes })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
    assert.are.equal(12, cases.count(after, 'conv2d'))
    assert.are.equal(0, cases.count(after, 'add') + cases.count(after, 'relu') + cases.count(after, 'batchnorm'))
  end)

  it('refuses an even kernel, padding other than kernel // 2, and no branches', function()
    for _, bad in ipairs({
      { 2, {}, 'needs an odd kernel and padding = kernel // 2 (got kernel 2, padding 1)' },
      { 3, { padding = 2 }, 'needs an odd kernel and padding = kernel // 2 (got kernel 3, padding 2)' },
      { 3, { num_conv_branches = 0 }, 'num_conv_branches' },
    }) do
      local ok, err = pcall(nn.MobileOneBlock, 8, 8, bad[1], bad[2])
      assert.is_false(ok)
      assert.truthy(err:find(bad[3], 1, true), err)
      assert.is_nil(err:find('\n'), err)
    end
  end)

  it('folds a block with squeeze-excitation (MobileOne-S4): the gate, and the ReLU fused into it', function()
    local m = nn.Sequential()
    m:add(nn.MobileOneBlock(16, 16, 3, { groups = 16, num_conv_branches = 2, use_se = true }))
    m:add(nn.MobileOneBlock(16, 32, 1, { num_conv_branches = 2, use_se = true }))
    local rel, after = cases.before_after(m, { 1, 16, 9, 7 }, 11, { passes })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
    assert.are.equal(2, cases.count(after, 'channel_gate'))
    assert.are.equal(0, cases.count(after, 'act') + cases.count(after, 'batchnorm'))
  end)
end)
