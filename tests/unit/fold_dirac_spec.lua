-- The Dirac fold is exact: a DiracNet v2 block (ReLU, conv with W = beta*normalize(V) + alpha*E,
-- BN with random statistics) and the plain conv + bias the folds put in its place agree in the
-- reference interpreter to fp32 rounding, across channel counts (equal, widening, narrowing), with
-- the delta buffer E used as stored (here random, which the fold must carry over as it is), a
-- filter of zero norm (the 1e-12 clamp), and through a whole reduced DiracNet-18 (stacked blocks,
-- stem, pools, the full pipeline), whose folded weights carry the deploy module's keys.
local nn = require 'nn'
local bind = require 'bind'
local tensor = require 'tensor'
local interpreter = require 'interpreter'
local passes = require 'passes'
local fold_dirac = require 'passes.fold_dirac'
local fold_bn = require 'passes.fold_bn'
local cases = require 'tests.unit.reparam_cases'
local diracnet = require 'models.diracnet'

-- A root module holding the eye buffer, with one block under `group0.block0`.
local function single(ni, no)
  local m = nn.Module('Case')
  local eye = string.format('eye%d_%d_3_3', no, ni)
  m:param(eye, { no, ni, 3, 3 }, { buffer = true })
  m:add('group0.block0', nn.DiracBlock(ni, no, { eye = eye, deploy = 'features.group0.block0.conv' }))
  function m:forward(x) return self['group0.block0'](x) end
  return m
end

describe('fold_dirac', function()
  local seed = 700
  for _, ch in ipairs({ { 8, 8 }, { 4, 8 }, { 8, 4 }, { 3, 12 }, { 16, 16 } }) do
    for _, size in ipairs({ { 7, 9 }, { 1, 1 }, { 12, 5 } }) do
      seed = seed + 1
      local s = seed
      local ni, no = ch[1], ch[2]
      it(string.format('%d->%d on %dx%d', ni, no, size[1], size[2]), function()
        local rel, after = cases.before_after(single(ni, no), { 1, ni, size[1], size[2] }, s, { fold_dirac, fold_bn })
        assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
        assert.are.equal(0, cases.count(after, 'batchnorm') + cases.count(after, 'dirac_conv2d'))
        assert.are.equal(1, cases.count(after, 'conv2d'))
        assert.is_not_nil(after.params['features.group0.block0.conv.weight'])
        assert.is_not_nil(after.params['features.group0.block0.conv.bias'])
        assert.is_nil(after.params['group0.block0.conv'])
      end)
    end
  end

  it('a filter of zero norm contributes alpha * delta only, as max(norm, 1e-12) makes it', function()
    local g = nn.trace(single(4, 4), { 1, 4, 6, 6 }, 'case')
    local w = bind.random_weights(g, 5)
    local v = w.tensors['group0.block0.conv']
    for i = 0, v.numel / 4 - 1 do v.data[i] = 0 end -- output channel 0
    bind.bind(g, w, 'random')
    local x = tensor.random({ 1, 4, 6, 6 }, tensor.rng(6), 1)
    local want = interpreter.run(g, x)[1]
    local got = interpreter.run(passes.run(g:clone()), x)[1]
    assert.is_true(interpreter.rel_diff(got, want) < 1e-6)
  end)

  it('a whole reduced DiracNet-18 through the pipeline: fp32 noise, deploy keys only', function()
    local cfg = { depth = 18, width = 4, num_classes = 10, final_pool = 1 }
    local rel, after = cases.before_after(diracnet.diracnet_train(cfg), { 1, 3, 32, 32 }, 11, { passes })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
    local deploy = nn.trace(diracnet.diracnet(cfg), { 1, 3, 32, 32 }, 'deploy')
    local want = {}
    for _, spec in ipairs(deploy.param_specs) do want[#want + 1] = spec.key end
    local got = {}
    for key in pairs(after.params) do got[#got + 1] = key end
    table.sort(want); table.sort(got)
    assert.are.same(want, got)
  end)
end)
