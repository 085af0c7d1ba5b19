-- pool_before_conv is exact: an average pool after a 1x1 conv, moved before it, gives the same output
-- (reference interpreter, random weights and inputs) over windows, strides, ceil_mode, groups and
-- bias; and it leaves what it may not move: max pooling, padded pools, 3x3 or strided convs, a conv
-- with an activation or another use.
local nn = require 'nn'
local cases = require 'tests.unit.reparam_cases'
local pool_before_conv = require 'passes.pool_before_conv'

local function model(conv_o, pool, relu_between, extra_use)
  local m = nn.Module('Case')
  m.conv = nn.Conv2d(8, 6, conv_o.k or 1, conv_o)
  m.pool = pool
  function m:forward(x)
    local y = self.conv(x)
    if relu_between then y = nn.relu(y) end
    local out = nn.relu(self.pool(y))
    if extra_use then out = out + nn.avg_pool2d(y, 2, { stride = 2, ceil_mode = true }) end
    return out
  end
  return m
end

local function moved(m, shape, seed)
  local rel, after = cases.before_after(m, shape, seed, { pool_before_conv })
  assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
  return after.nodes[1].op == 'pool2d'
end

describe('pool_before_conv', function()
  local seed = 0
  for _, p in ipairs({ { 2, 2, false }, { 3, 2, true }, { 2, 1, false }, { 3, 3, true } }) do
    for _, groups in ipairs({ 1, 2 }) do
      for _, bias in ipairs({ true, false }) do
        seed = seed + 1
        local s = seed
        it(string.format('avg %dx%d s%d ceil=%s after a 1x1 conv (groups %d, bias %s)', p[1], p[1], p[2],
          tostring(p[3]), groups, tostring(bias)), function()
          local m = model({ groups = groups, bias = bias }, nn.AvgPool2d(p[1], { stride = p[2], ceil_mode = p[3] }))
          assert.is_true(moved(m, { 1, 8, 9, 7 }, s))
        end)
      end
    end
  end

  it('leaves max pools, padded pools, 3x3 or strided convs, activations and shared outputs alone', function()
    assert.is_false(moved(model({}, nn.MaxPool2d(2)), { 1, 8, 8, 8 }, 1))
    assert.is_false(moved(model({}, nn.AvgPool2d(3, { stride = 2, padding = 1 })), { 1, 8, 8, 8 }, 2))
    assert.is_false(moved(model({ k = 3, padding = 1 }, nn.AvgPool2d(2)), { 1, 8, 8, 8 }, 3))
    assert.is_false(moved(model({ stride = 2 }, nn.AvgPool2d(2)), { 1, 8, 8, 8 }, 4))
    assert.is_false(moved(model({}, nn.AvgPool2d(2), true), { 1, 8, 8, 8 }, 5))
    assert.is_false(moved(model({}, nn.AvgPool2d(2, { stride = 2, ceil_mode = true }), false, true), { 1, 8, 9, 9 }, 6))
  end)
end)
