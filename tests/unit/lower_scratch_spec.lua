-- A kernel's scratch in the arena (Lowering:scratch): the attention step gets K^T in blocks of 16 keys
-- and V as dense rows, per head, as two arena buffers alive during that step only, the same size on
-- every target (the memory plan may reuse them for the next steps' tensors).
local nn = require 'nn'
local bind = require 'bind'
local passes = require 'passes'
local lower = require 'lower'
local memory_plan = require 'memory_plan'

local function attention_program(target)
  local m = nn.Module('Net')
  m.attn = nn.Attention(24, 3)
  function m:forward(x) return self.attn(x) end
  local g = nn.trace(m, { 1, 37, 24 }, 'case')
  bind.bind(g, bind.random_weights(g, 1), 'random')
  return lower.lower(passes.run(g:clone()), { target = target })
end

local function attention_step(program)
  for i, s in ipairs(program.steps) do
    if s.generator == 'attention' then return s, i end
  end
end

describe('kernel scratch', function()
  it('gives attention K^T and V per head, alive during its step only', function()
    local program = attention_program('x86-64-linux-avx-avx2-avx512-f16c-fma-sse41')
    local s = attention_step(program)
    assert.are.equal(4, #s.args)
    local kt, v = s.args[3], s.args[4]
    -- 37 tokens: 3 blocks of 16 keys; 3 heads of 8 (times one window)
    assert.are.same({ { 16, 1 }, { 8, 16 }, { 3, 128 }, { 3, 384 } }, kt.dims)
    assert.are.same({ { 8, 1 }, { 37, 8 }, { 3, 296 }, { 1, 888 } }, v.dims)
    assert.are.equal(4 * 16 * 8 * 3 * 3, kt.act.bytes)
    assert.are.equal(4 * 8 * 37 * 3, v.act.bytes)
    assert.are_not.equal(kt.act, v.act)
    for _, a in ipairs({ kt.act, v.act }) do
      assert.are.equal(a.first, a.last)
      assert.are.equal(s.args[1].act.last, a.first) -- the step reading qkv
    end
    local arena = memory_plan.plan(program.acts)
    assert.is_true(arena >= kt.act.bytes + v.act.bytes)
  end)

  it('is the same on every target (one arena for a multi-architecture bundle)', function()
    local a = attention_step(attention_program('x86-64-linux-avx-avx2-avx512-f16c-fma-sse41'))
    local b = attention_step(attention_program('arm-64-linux'))
    assert.are.same(a.args[3].dims, b.args[3].dims)
    assert.are.same(a.args[4].dims, b.args[4].dims)
  end)
end)
