-- The BatchNorm fold and the epilogue fusion are exact: the graph before and after, run in the
-- reference interpreter on random inputs with random BN statistics, agree to fp32 rounding, across
-- kernel sizes, strides, groups (1, 2, depthwise), paddings, dilations and channel counts.
local nn = require 'nn'
local cases = require 'tests.unit.reparam_cases'
local fold_bn = require 'passes.fold_bn'
local fuse_epilogue = require 'passes.fuse_epilogue'

local before_after, count = cases.before_after, cases.count

describe('fold_bn', function()
  local seed = 1
  for _, k in ipairs({ 1, 3, 5 }) do
    for _, stride in ipairs({ 1, 2 }) do
      for _, groups in ipairs({ 1, 2, 8 }) do
        for _, pad in ipairs({ 0, 1, 2 }) do
          for _, dil in ipairs({ 1, 2 }) do
            for _, bias in ipairs({ false, true }) do
              seed = seed + 1
              local s = seed
              it(string.format('conv k%d s%d g%d p%d d%d bias=%s + BN', k, stride, groups, pad, dil, tostring(bias)), function()
                local m = nn.Module('Case')
                m.conv = nn.Conv2d(8, 8, k, { stride = stride, padding = pad, dilation = dil, groups = groups, bias = bias })
                m.bn = nn.BatchNorm2d(8, { eps = 1e-3 })
                function m:forward(x) return self.bn(self.conv(x)) end
                local rel, after = before_after(m, { 1, 8, 11, 9 }, s, { fold_bn })
                assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
                assert.are.equal(0, count(after, 'batchnorm'))
              end)
            end
          end
        end
      end
    end
  end

  it('folds BatchNorm1d into the linear before it', function()
    local m = nn.Module('Head')
    m.fc = nn.Linear(12, 7)
    m.bn = nn.BatchNorm1d(7)
    function m:forward(x) return self.bn(self.fc(nn.flatten(x, 1))) end
    local rel, after = before_after(m, { 1, 3, 2, 2 }, 3, { fold_bn })
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
    assert.are.equal(0, count(after, 'batchnorm'))
  end)

  it('folds BatchNorm1d over the channels of tokens into the linear before it (LeViT Linear_BN)', function()
    local m = nn.Module('LinearBN')
    m.c = nn.Linear(6, 5, { bias = false })
    m.bn = nn.BatchNorm1d(5, { tokens = true })
    function m:forward(x) return self.bn(self.c(nn.tokens(x))) end
    local rel, after = before_after(m, { 1, 6, 3, 4 }, 5, { fold_bn })
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
    assert.are.equal(0, count(after, 'batchnorm'))
  end)

  for _, bias in ipairs({ false, true }) do
    it('folds BatchNorm1d into the linear after it, bias=' .. tostring(bias) .. ' (LeViT BN_Linear heads)', function()
      local m = nn.Module('Heads')
      m.bn1, m.bn2 = nn.BatchNorm1d(6), nn.BatchNorm1d(6)
      m.l1, m.l2 = nn.Linear(6, 4, { bias = bias }), nn.Linear(6, 4, { bias = bias })
      function m:forward(x)
        local t = nn.flatten(x, 1)
        return self.l1(self.bn1(t)) + self.l2(self.bn2(t))
      end
      local rel, after = before_after(m, { 1, 6, 1, 1 }, 9, { fold_bn })
      assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
      assert.are.equal(0, count(after, 'batchnorm'))
    end)
  end

  it('folds a layer scale into the linear on tokens before it, and into a conv (ConvNeXt)', function()
    local m = nn.Module('Scaled')
    m.conv = nn.Conv2d(6, 6, 3, { padding = 1, groups = 6 })
    m.fc = nn.Linear(6, 6)
    m:param('layer_scale', { 6, 1, 1 })
    m:param('gamma', { 6 })
    function m:forward(x)
      local y = nn.scale_channels(self.conv(x), self, 'gamma')
      return x + nn.token_map(nn.scale_channels(self.fc(nn.tokens(y)), self, 'layer_scale'), 5, 4)
    end
    local rel, after = before_after(m, { 1, 6, 5, 4 }, 7, { fold_bn })
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
    assert.are.equal(0, count(after, 'channel_scale'))
  end)

  it('keeps a layer scale with no conv before it as a depthwise 1x1 affine', function()
    local m = nn.Module('Pre')
    m:param('gamma', { 4 })
    m.conv = nn.Conv2d(4, 6, 3, { padding = 1 })
    function m:forward(x) return self.conv(nn.scale_channels(x, self, 'gamma')) end
    local rel, after = before_after(m, { 1, 4, 7, 7 }, 8, { fold_bn })
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
    assert.are.equal(2, count(after, 'conv2d'))
  end)

  it('keeps a BN with no conv before it as a depthwise 1x1 affine', function()
    local m = nn.Module('Pre')
    m.bn = nn.BatchNorm2d(4)
    m.conv = nn.Conv2d(4, 6, 3, { padding = 1 })
    function m:forward(x) return self.conv(self.bn(x)) end
    local rel, after = before_after(m, { 1, 4, 7, 7 }, 4, { fold_bn })
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
    assert.are.equal(2, count(after, 'conv2d'))
  end)

  it('keeps a BN whose conv output has another consumer', function()
    local m = nn.Module('Branch')
    m.conv = nn.Conv2d(4, 4, 3, { padding = 1 })
    m.bn = nn.BatchNorm2d(4)
    function m:forward(x) local y = self.conv(x); return self.bn(y) + y end
    local rel = before_after(m, { 1, 4, 6, 6 }, 5, { fold_bn, fuse_epilogue })
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
  end)

  it('stacked folds: error stays at fp32 noise through 12 conv-BN-ReLU layers', function()
    local m = nn.Sequential()
    for _ = 1, 12 do
      m:add(nn.Conv2d(8, 8, 3, { padding = 1, bias = false }))
      m:add(nn.BatchNorm2d(8))
      m:add(nn.ReLU())
    end
    local rel = before_after(m, { 1, 8, 9, 9 }, 6, { fold_bn, fuse_epilogue })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
  end)
end)

describe('fuse_epilogue', function()
  it('fuses residual add and ReLU into the later conv (ResNet bottleneck with downsample)', function()
    local resnet = require 'models.resnet'
    local model = resnet.resnet({ depth = 50, width = 4, num_classes = 5 })
    local rel, after = before_after(model, { 1, 3, 32, 32 }, 7, { fold_bn, fuse_epilogue })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
    assert.are.equal(0, count(after, 'add'))
    assert.are.equal(0, count(after, 'act'))
    assert.are.equal(0, count(after, 'batchnorm'))
  end)

  it('fuses the ReLU after a max-pool into the pool (DiracNet group boundary)', function()
    local diracnet = require 'models.diracnet'
    local model = diracnet.diracnet({ depth = 18, width = 4, num_classes = 5, final_pool = 1 })
    local rel, after = before_after(model, { 1, 3, 32, 32 }, 8, { fold_bn, fuse_epilogue })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
    assert.are.equal(0, count(after, 'act'))
  end)
end)
