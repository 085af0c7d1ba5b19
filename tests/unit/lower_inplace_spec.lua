-- In-place residual adds (ops/conv2d.lua, Lowering:can_overwrite): a direct conv writes its output
-- over its residual's buffer only when nothing reads that buffer afterwards, through the tensor or a
-- view of it; the graph input and the conv's own input are never overwritten, nor a residual whose
-- width leaves the in-place kernel (tiles dividing it) no 4 to 16 pixel tile.
local nn = require 'nn'
local bind = require 'bind'
local passes = require 'passes'
local lower = require 'lower'

local TARGET = 'x86-64-linux-avx-avx2-f16c-fma-sse41'

-- Lower a model (seeded random weights, the deploy passes) and return its conv steps by name.
local function conv_steps(model, input_shape)
  local g = nn.trace(model, input_shape, 'case')
  bind.bind(g, bind.random_weights(g, 1), 'random')
  local deploy = passes.run(g:clone())
  local program = lower.lower(deploy, { target = TARGET, conv_algo = 'direct' })
  local steps = {}
  for _, s in ipairs(program.steps) do
    if s.generator == 'conv2d' then steps[s.name] = s end
  end
  return steps
end

-- residual and output arguments of a conv step (the two last)
local function res_out(step) return step.args[#step.args - 1], step.args[#step.args] end

local function block(extra_use)
  local m = nn.Module('Block')
  m.stem = nn.Conv2d(16, 16, 3, { padding = 1 })
  m.a = nn.Conv2d(16, 16, 1)
  m.b = nn.Conv2d(16, 16, 1)
  function m:forward(x)
    local r = nn.relu(self.stem(x))
    local y = self.b(nn.relu(self.a(r))) + r
    if extra_use then y = y + r end
    return y
  end
  return m
end

describe('in-place residual', function()
  it('writes the output over a residual that has no later use', function()
    local s = conv_steps(block(false), { 1, 16, 6, 6 })['b']
    assert.is_true(s.gparams.in_place)
    local res, out = res_out(s)
    assert.are.equal(res.act, out.act)
  end)

  it('keeps a residual that is read again later', function()
    local s = conv_steps(block(true), { 1, 16, 6, 6 })['b']
    assert.is_nil(s.gparams.in_place)
    local res, out = res_out(s)
    assert.are_not.equal(res.act, out.act)
  end)

  it('never overwrites the graph input', function()
    local m = nn.Module('Input')
    m.a = nn.Conv2d(16, 16, 1)
    function m:forward(x) return self.a(x) + x end
    local s = conv_steps(m, { 1, 16, 5, 5 })['a']
    assert.is_nil(s.gparams.in_place)
  end)

  it('writes a new buffer where tiles dividing the width would be under 4 pixels', function()
    -- 37 wide (prime): an in-place kernel would run 1-pixel tiles; 38 = 2 x 19 and 74 = 2 x 37 too
    for _, w in ipairs({ 37, 38, 74 }) do
      local s = conv_steps(block(false), { 1, 16, 3, w })['b']
      assert.is_nil(s.gparams.in_place)
    end
    for _, w in ipairs({ 28, 35, 16, 3 }) do
      assert.is_true(conv_steps(block(false), { 1, 16, 3, w })['b'].gparams.in_place)
    end
  end)

  it('never overwrites the conv\'s own input', function()
    local m = nn.Module('Self')
    m.stem = nn.Conv2d(16, 16, 1)
    m.a = nn.Conv2d(16, 16, 1)
    function m:forward(x) local r = self.stem(x); return self.a(r) + r end
    local s = conv_steps(m, { 1, 16, 5, 5 })['a']
    assert.is_nil(s.gparams.in_place)
  end)
end)
