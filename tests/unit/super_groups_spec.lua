-- Grouped convs narrower than a vector run as wider block-diagonal groups (ops/conv2d.lua,
-- super_groups / widen_groups): the widened weight gives the same conv (the reference eval on
-- random data), and the choice leaves dense, depthwise, vector-wide and narrow groups (as many input
-- as output channels, whole groups in every vector: the kernel's own path) alone.
local conv2d = require 'ops.conv2d'
local tensor = require 'tensor'
local interpreter = require 'interpreter'

local function node(cin, cout, groups, k, w)
  return { attrs = { cin = cin, cout = cout, groups = groups, kernel = { k, k }, stride = { 1, 1 },
                     padding = { 1, 1 }, dilation = { 1, 1 } },
           params = { weight = w }, outputs = { { shape = { 1, cout, 5, 6 } } } }
end

describe('super_groups', function()
  it('chooses wider groups only for groups narrower than a vector that tile it', function()
    local function sg(cin, cout, groups) return conv2d.super_groups({ cin = cin, cout = cout, groups = groups }, 16) end
    assert.is_nil(sg(128, 128, 32))        -- ResNeXt-50 layer1: 4 channels a group, narrow
    assert.is_nil(sg(256, 256, 32))        -- layer2: 8, narrow
    assert.is_nil(sg(512, 512, 32))        -- layer3: 16, a vector already
    assert.are.equal(8, sg(64, 128, 16))   -- 4 in, 8 out a group: widened to 16 out
    assert.are.equal(3, sg(24, 48, 12))    -- 2 in, 4 out a group: 3 groups of 16 out
    assert.is_nil(sg(64, 64, 64))          -- depthwise
    assert.is_nil(sg(64, 64, 1))           -- dense
    assert.is_nil(sg(16, 24, 2))           -- 12 channels a group do not tile 16
    assert.is_nil(sg(24, 24, 6))           -- 4 a group, but 6 groups do not fill whole vectors
    assert.are.equal(1, sg(8, 16, 8))      -- channel multiplier 2
  end)

  for _, c in ipairs({ { 16, 32, 4, 3, 16 }, { 32, 64, 16, 3, 8 }, { 8, 16, 8, 1, 16 }, { 24, 48, 12, 3, 16 } }) do
    local cin, cout, groups, k, lanes = unpack(c)
    it(string.format('%d->%d groups %d k%d on %d lanes: the widened conv is the same', cin, cout, groups, k, lanes), function()
      local a = node(cin, cout, groups, k, 'w').attrs
      local sg = conv2d.super_groups(a, lanes)
      assert.is_not_nil(sg)
      local rng = tensor.rng(cin + cout + groups)
      local x = tensor.random({ 1, cin, 5, 6 }, rng)
      local W = tensor.random({ cout, cin / groups, k, k }, rng)
      local want = conv2d.eval(node(cin, cout, groups, k, 'w'), { x }, { w = { data = W.data } })
      local wide = conv2d.widen_groups(W, a, sg)
      local got = conv2d.eval(node(cin, cout, sg, k, 'w'), { x }, { w = { data = wide.data } })
      assert.are.equal(0, (interpreter.rel_diff(got, want)))
    end)
  end
end)
