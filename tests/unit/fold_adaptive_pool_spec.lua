-- AdaptiveAvgPool2d: the fold into a following flatten + Linear is exact (interpreter before and
-- after, over enlarging bins that overlap and repeat), is applied only where it makes the Linear
-- smaller, and a pool the backend cannot run (sizes that do not divide, not before a Linear) is
-- refused at lowering with one line naming the sizes.
local nn = require 'nn'
local bind = require 'bind'
local passes = require 'passes'
local lower = require 'lower'
local cases = require 'tests.unit.reparam_cases'
local fold_adaptive_pool = require 'passes.fold_adaptive_pool'

local function head(c, size, cout)
  local m = nn.Module('Head')
  m.pool = nn.AdaptiveAvgPool2d(size)
  m.fc = nn.Linear(c * size[1] * size[2], cout)
  function m:forward(x) return nn.relu(self.fc(nn.flatten(self.pool(x), 1))) end
  return m
end

describe('fold_adaptive_pool', function()
  local seed = 0
  for _, hw in ipairs({ { 1, 1 }, { 2, 2 }, { 3, 2 }, { 5, 4 }, { 6, 7 } }) do
    for _, out in ipairs({ { 7, 7 }, { 4, 5 } }) do
      seed = seed + 1
      local s = seed
      local grows = out[1] * out[2] > hw[1] * hw[2]
      it(string.format('%dx%d -> %dx%d, flatten, Linear (%s)', hw[1], hw[2], out[1], out[2],
        grows and 'folded' or 'kept'), function()
        local rel, after = cases.before_after(head(3, out, 5), { 1, 3, hw[1], hw[2] }, s, { fold_adaptive_pool })
        assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
        assert.are.equal(grows and 0 or 1, cases.count(after, 'adaptive_avgpool'))
      end)
    end
  end

  it('refuses a pool of sizes that do not divide and that it cannot fold', function()
    local g = nn.trace(head(3, { 4, 4 }, 5), { 1, 3, 10, 9 }, 'case')
    bind.bind(g, bind.random_weights(g, 1), 'random')
    local ok, err = pcall(lower.lower, passes.run(g:clone()), { target = 'x86-64-linux-avx-avx2-f16c-fma-sse41' })
    assert.is_false(ok)
    assert.matches('adaptive_avg_pool2d from 10x9 to 4x4', err, 1, true)
  end)
end)
