-- A Linear on transposed tokens becomes a Linear over the token axis and the transposes cancel
-- (passes/fold_token_transpose.lua): exact, checked in the reference interpreter before and after,
-- with and without the activation, the bias and the residual (fused by fuse_linear_tokens).
local nn = require 'nn'
local cases = require 'tests.unit.reparam_cases'
local fold = require 'passes.fold_token_transpose'
local fuse_epilogue = require 'passes.fuse_epilogue'
local fuse_linear_tokens = require 'passes.fuse_linear_tokens'

local before_after, count = cases.before_after, cases.count

local function token_mlp(n, hidden, o)
  local m = nn.Module('Case')
  m.fc1 = nn.Linear(n, hidden, { bias = o.bias })
  m.fc2 = nn.Linear(hidden, n, { bias = o.bias })
  function m:forward(x)
    local t = nn.tokens(x)
    local h = self.fc1(nn.transpose_tokens(t))
    if o.act then h = nn.gelu(h) end
    local y = nn.transpose_tokens(self.fc2(h))
    return nn.token_map(o.residual and t + y or y, x.shape[3], x.shape[4])
  end
  return m
end

describe('fold_token_transpose', function()
  local seed = 10
  for _, shape in ipairs({ { 1, 16, 3, 5 }, { 1, 32, 7, 7 } }) do
    for _, bias in ipairs({ false, true }) do
      for _, act in ipairs({ false, true }) do
        for _, residual in ipairs({ false, true }) do
          seed = seed + 1
          local s = seed
          it(string.format('transpose, fc1%s, fc2, transpose%s on %s, bias=%s', act and ' + GELU' or '',
            residual and ' + x' or '', table.concat(shape, 'x'), tostring(bias)), function()
            local n = shape[3] * shape[4]
            local m = token_mlp(n, n + 3, { bias = bias, act = act, residual = residual })
            local rel, after = before_after(m, shape, s, { fuse_epilogue, fold, fuse_linear_tokens })
            assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
            assert.are.equal(0, count(after, 'transpose_tokens'))
            assert.are.equal(2, count(after, 'token_linear'))
            assert.are.equal(0, count(after, 'add'))
          end)
        end
      end
    end
  end

  it('keeps a Linear on a transpose of a transpose over the channels', function()
    local m = nn.Module('Case')
    m.fc = nn.Linear(15, 9)
    m.ch = nn.Linear(16, 16)
    function m:forward(x)
      return self.ch(nn.transpose_tokens(self.fc(nn.transpose_tokens(nn.tokens(x)))))
    end
    local rel, after = before_after(m, { 1, 16, 3, 5 }, 4, { fold, fuse_linear_tokens })
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
    assert.are.equal(0, count(after, 'transpose_tokens'))
    assert.are.equal(1, count(after, 'token_linear'))
    assert.are.equal(1, count(after, 'linear_tokens'))
  end)

  it('leaves a transpose whose channels are not whole vectors (refused at lowering)', function()
    local rel, after = before_after(token_mlp(6, 4, {}), { 1, 12, 2, 3 }, 3, { fold })
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
    assert.are.equal(2, count(after, 'transpose_tokens'))
    assert.are.equal(0, count(after, 'token_linear'))
  end)
end)
