-- Lowering a batch of N images (compiler/lower.lua): the leading steps whose weights are lighter
-- than one image's activations run image-major, buffers used only inside them hold one image and
-- every other buffer they touch lives over the whole prefix; from the first weight-heavy step on,
-- convolutions take batch = N and an image dimension, GEMMs N times the rows, the rest run once per
-- image; a batch of 1 lowers exactly as before.
local nn = require 'nn'
local bind = require 'bind'
local passes = require 'passes'
local lower = require 'lower'

local TARGET = 'x86-64-linux-avx-avx2-f16c-fma-sse41'

-- A stem on a large map (light weights), then a deep 3x3 on a small map (heavy weights), a pool and
-- a Linear head.
local function net()
  local m = nn.Module('Net')
  m.stem = nn.Conv2d(3, 16, 3, { padding = 1 })
  m.mid = nn.Conv2d(16, 16, 1)
  m.deep = nn.Conv2d(16, 256, 3, { stride = 8, padding = 1 })
  m.pool = nn.AdaptiveAvgPool2d(1)
  m.fc = nn.Linear(256, 10)
  function m:forward(x)
    local y = nn.relu(self.mid(nn.relu(self.stem(x))))
    return self.fc(nn.flatten(self.pool(self.deep(y)), 1))
  end
  return m
end

local function program(batch)
  local g = nn.trace(net(), { 1, 3, 32, 32 }, 'case')
  g.batch = batch
  bind.bind(g, bind.random_weights(g, 1), 'random')
  return lower.lower(passes.run(g:clone()), { target = TARGET, conv_algo = 'direct' })
end

local function by_name(p)
  local steps = {}
  for _, s in ipairs(p.steps) do steps[s.name] = s end
  return steps
end

describe('lowering a batch', function()
  it('runs the light prefix image-major on one-image buffers, the rest batched', function()
    local p = program(4)
    local s = by_name(p)
    assert.are.equal(2, p.image_major)
    assert.is_true(s.stem.image_major and s.mid.image_major)
    assert.is_nil(s.stem.gparams.batch)
    assert.are.equal(4, s.deep.gparams.batch)
    assert.are.same({ 256, 1 }, s.deep.args[#s.deep.args].dims[1])
    assert.are.same({ 4, 256 * 4 * 4 }, s.deep.args[#s.deep.args].dims[4])
    assert.are.equal(4, s.pool.images)
    assert.are.equal(4, s.fc.gparams.rows)
    assert.are.same({ 4, 3, 32, 32 }, p.input.shape)
    assert.are.same({ 4, 10 }, p.output.shape)
    -- stem's output is used only inside the prefix: one image; mid's output is read by deep: all
    -- four images, alive from step 0 (image 1 runs the prefix after image 0 wrote it)
    local stem_out, mid_out = s.stem.args[#s.stem.args].act, s.mid.args[#s.mid.args].act
    assert.is_true(stem_out.one_image)
    assert.are.equal(4 * 16 * 32 * 32, stem_out.bytes)
    assert.is_nil(mid_out.one_image)
    assert.are.equal(4 * 4 * 16 * 32 * 32, mid_out.bytes)
    assert.are.equal(0, mid_out.first)
    assert.is_true(p.input.act.last >= 2)
  end)

  it('lowers batch 1 as before: no image-major prefix, no batch parameter, one image a buffer', function()
    local p = program(1)
    local s = by_name(p)
    assert.are.equal(0, p.image_major)
    assert.is_nil(s.deep.gparams.batch)
    assert.is_nil(s.stem.image_major)
    assert.are.equal(3, #s.deep.args[#s.deep.args].dims)
    assert.are.equal(1, s.fc.gparams.rows)
  end)

  it('runs a Linear over the token axis once per image (its weight panel is the image\'s tokens)', function()
    local m = nn.Module('Mix')
    m.fc = nn.Linear(64, 128)
    m.ch = nn.Linear(16, 512)
    function m:forward(x)
      return self.ch(nn.transpose_tokens(self.fc(nn.transpose_tokens(nn.tokens(x)))))
    end
    local g = nn.trace(m, { 1, 16, 8, 8 }, 'case') -- fc's weights outweigh the image's tokens: no prefix
    g.batch = 4
    bind.bind(g, bind.random_weights(g, 2), 'random')
    local s = by_name(lower.lower(passes.run(g:clone()), { target = TARGET }))
    assert.are.equal('token_linear', s.fc.op)
    assert.are.equal(4, s.fc.images)
    assert.are.equal(128, s.fc.gparams.rows)
    assert.are.equal('linear_tokens', s.ch.op)
    assert.are.equal(4 * 128, s.ch.gparams.rows)
  end)
end)
