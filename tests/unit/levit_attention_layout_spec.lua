-- LeViT's attention in the attention kernel's form (passes/levit_attention_layout.lua) is exact: the
-- graph before and after, run in the reference interpreter with random weights, agree to fp32
-- rounding, for the attention block (q | k | v per head, value dim 2 and 4 key dims) and the
-- subsampling one (kv and q on every other row and column of an odd and an even grid).
local nn = require 'nn'
local cases = require 'tests.unit.reparam_cases'
local fold_bn = require 'passes.fold_bn'
local layout = require 'passes.levit_attention_layout'

local before_after, count = cases.before_after, cases.count

local function linear_bn(m, name, cin, cout)
  m[name] = nn.Module('Linear_BN')
  m[name].c = nn.Linear(cin, cout, { bias = false })
  m[name].bn = nn.BatchNorm1d(cout, { tokens = true })
  return function(x) return m[name].bn(m[name].c(x)) end
end

local function block(dim, kd, heads, ratio, res, stride)
  local m = nn.Module('Case')
  local vd = ratio * kd
  m:param('attention_biases', { heads, res * res })
  local qkv = stride == 1 and linear_bn(m, 'qkv', dim, heads * (2 * kd + vd))
  local kv = stride > 1 and linear_bn(m, 'kv', dim, heads * (kd + vd))
  local q = stride > 1 and linear_bn(m, 'q', dim, heads * kd)
  local pool = nn.MaxPool2d(1, { stride = stride })
  m.pool = pool
  function m:forward(x)
    local t = nn.tokens(x)
    local o = { heads = heads, key_dim = kd, value_dim = vd, res = res, stride = stride }
    if stride == 1 then return nn.levit_attention(qkv(t), o, self) end
    o.q = q(nn.tokens(self.pool(x)))
    return nn.levit_attention(kv(t), o, self)
  end
  return m
end

describe('levit_attention_layout', function()
  for _, c in ipairs({ { 16, 4, 2, 2, 5, 1 }, { 16, 4, 3, 4, 4, 1 }, { 16, 4, 2, 4, 5, 2 }, { 24, 8, 3, 4, 4, 2 } }) do
    local dim, kd, heads, ratio, res, stride = unpack(c)
    it(string.format('dim %d, %d heads of key dim %d, value dim %d, %dx%d grid, stride %d', dim, heads, kd,
      ratio * kd, res, res, stride), function()
      local rel, after = before_after(block(dim, kd, heads, ratio, res, stride), { 1, dim, res, res }, res + stride,
        { fold_bn, layout })
      assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
      assert.are.equal(1, count(after, 'levit_attention'))
      assert.are.equal(1, count(after, 'linear'))
      for _, n in ipairs(after.nodes) do
        if n.op == 'levit_attention' then
          assert.is_true(n.attrs.kernel_layout)
          assert.are.equal(1, #n.inputs)
        end
      end
    end)
  end
end)
