-- Channel concatenation without copies (lower.lua, place_concats): every input of a concat is written
-- by its producer into its channel slice of one buffer (a view with a channel offset and the
-- concatenation's pixel stride, the kernels' in_cs / out_cs), a DenseNet layer's input is a prefix
-- view of its block's buffer, and what cannot be written in place is refused with one line.
local nn = require 'nn'
local bind = require 'bind'
local passes = require 'passes'
local lower = require 'lower'
local densenet = require 'models.densenet'

local TARGET = 'x86-64-linux-avx-avx2-f16c-fma-sse41'

local function lowered(model, input_shape)
  local g = nn.trace(model, input_shape, 'case')
  bind.bind(g, bind.random_weights(g, 1), 'random')
  return lower.lower(passes.run(g:clone()), { target = TARGET })
end

local function step_named(program, name)
  for _, s in ipairs(program.steps) do
    if s.name == name then return s end
  end
end

describe('concat lowering', function()
  it('writes every DenseNet layer into its block buffer and reads prefixes of it', function()
    local m = densenet.densenet({ growth_rate = 4, block_config = { 3, 2 }, num_init_features = 8, bn_size = 2,
                                  num_classes = 10 })
    local p = lowered(m, { 1, 3, 32, 32 })
    -- block 1: 8 + 3 * 4 = 20 channels; layer 2 writes channels 12..15, its norm1 reads channels 0..11
    local pool0 = step_named(p, 'features.pool0')
    assert.are.equal(20, pool0.gparams.out_cs)
    local conv2 = step_named(p, 'features.denseblock1.denselayer2.conv2')
    assert.are.equal(20, conv2.gparams.out_cs)
    local out = conv2.args[#conv2.args]
    assert.are.equal(12, out.elem_offset)
    local norm1 = step_named(p, 'features.denseblock1.denselayer2.norm1')
    assert.are.equal(20, norm1.gparams.in_cs)
    assert.are.same({ { 12, 1 }, { 8, 20 }, { 8, 160 } }, norm1.args[1].dims)
    assert.are.equal(out.act, norm1.args[1].act) -- the same buffer
    -- the transition reads the whole block buffer as a plain map
    assert.is_nil(step_named(p, 'features.transition1.norm').gparams.in_cs)
    for _, s in ipairs(p.steps) do assert.are_not.equal('concat', s.op) end
  end)

  it('refuses the model input as a concat input (it cannot be written in place)', function()
    local m = nn.Module('Case')
    m.conv = nn.Conv2d(3, 4, 3, { padding = 1 })
    function m:forward(x) return nn.cat({ x, self.conv(x) }, 1) end
    local ok, err = pcall(lowered, m, { 1, 3, 8, 8 })
    assert.is_false(ok)
    assert.matches('input 1 of the concatenation (the model input) cannot be written in place', err, 1, true)
  end)

  it('refuses a slice that another kernel would read as a plain map (here: a residual)', function()
    local m = nn.Module('Case')
    m.a = nn.Conv2d(3, 4, 3, { padding = 1 })
    m.b = nn.Conv2d(3, 4, 3, { padding = 1 })
    m.c = nn.Conv2d(8, 4, 1)
    function m:forward(x)
      local a = self.a(x)
      return self.c(nn.cat({ a, self.b(x) }, 1)) + a
    end
    local ok, err = pcall(lowered, m, { 1, 3, 8, 8 })
    assert.is_false(ok)
    assert.matches('input 1 of the concatenation (a) cannot be written in place', err, 1, true)
  end)

  it('refuses a channel slice as the model output and under a flatten', function()
    local m = nn.Module('Case')
    m.conv = nn.Conv2d(3, 4, 3, { padding = 1 })
    function m:forward(x) return (nn.chunk(self.conv(x), 2, 1)) end
    local ok, err = pcall(lowered, m, { 1, 3, 8, 8 })
    assert.is_false(ok)
    assert.matches('the model output is a slice', err, 1, true)
    local h = nn.Module('Case')
    h.conv = nn.Conv2d(3, 4, 3, { padding = 1 })
    h.fc = nn.Linear(32, 5)
    function h:forward(x) return self.fc(nn.flatten((nn.chunk(self.conv(x), 2, 1)), 1)) end
    ok, err = pcall(lowered, h, { 1, 3, 4, 4 })
    assert.is_false(ok)
    assert.matches('a flatten of a channel slice is not supported', err, 1, true)
  end)
end)
