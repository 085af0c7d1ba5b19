-- pad_after_linear is exact: a Linear after a zero pad of a token map, moved before it with the pad
-- filled by its bias, gives the same output (reference interpreter, random weights and inputs),
-- with and without a bias, padding rows, columns or both; and it leaves what it may not move: a
-- crop, a pad with another use.
local nn = require 'nn'
local cases = require 'tests.unit.reparam_cases'
local pad_after_linear = require 'passes.pad_after_linear'

local function model(map, out, bias, extra_use)
  local m = nn.Module('Case')
  m.fc = nn.Linear(6, 10, { bias = bias })
  m.back = nn.Linear(10, 6)
  function m:forward(t)
    local p = nn.pad_tokens(t, map, out)
    local y = self.back(self.fc(p))
    if extra_use then y = y + p end
    return nn.pad_tokens(y, out, map)
  end
  return m
end

local function moved(m, map, seed)
  local rel, after = cases.before_after(m, { 1, map[1] * map[2], 6 }, seed, { pad_after_linear })
  assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
  return after.nodes[1].op == 'linear'
end

describe('pad_after_linear', function()
  local seed = 0
  for _, c in ipairs({ { { 5, 3 }, { 7, 6 } }, { { 4, 4 }, { 4, 6 } }, { { 3, 5 }, { 6, 5 } } }) do
    for _, bias in ipairs({ true, false }) do
      seed = seed + 1
      local s = seed
      it(string.format('%dx%d -> %dx%d (bias %s)', c[1][1], c[1][2], c[2][1], c[2][2], tostring(bias)), function()
        assert.is_true(moved(model(c[1], c[2], bias), c[1], s))
      end)
    end
  end

  it('fills with the Linear\'s bias; a zero fill moves on past the next Linear', function()
    local function ops(g)
      local t = {}
      for i, n in ipairs(g.nodes) do t[i] = n.op .. (n.params.fill and ('(' .. n.params.fill .. ')') or '') end
      return table.concat(t, ' ')
    end
    local _, after = cases.before_after(model({ 2, 2 }, { 3, 3 }, true), { 1, 4, 6 }, 9, { pad_after_linear })
    assert.are.equal('linear pad_tokens(fc.bias) linear pad_tokens', ops(after))
    -- fc without a bias: its pad stays zeros, and moves after `back` too, taking back's bias
    _, after = cases.before_after(model({ 2, 2 }, { 3, 3 }, false), { 1, 4, 6 }, 9, { pad_after_linear })
    assert.are.equal('linear linear pad_tokens(back.bias) pad_tokens', ops(after))
  end)

  it('leaves crops and shared pads alone', function()
    assert.is_false(moved(model({ 6, 5 }, { 4, 5 }), { 6, 5 }, 20))
    assert.is_false(moved(model({ 6, 5 }, { 7, 4 }), { 6, 5 }, 21))
    local m = model({ 3, 3 }, { 4, 4 }, true, true)
    m.back = nn.Linear(10, 6)
    assert.is_false(moved(m, { 3, 3 }, 22))
  end)
end)
