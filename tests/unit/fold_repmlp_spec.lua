-- The RepMLP fold is exact: a training-time RepMLP (global perceptron with its BN after the pool,
-- partition FC with its BatchNorm1d, local perceptron of kxk convs on each partition with their BNs,
-- random statistics everywhere) and its deploy form (fc1 re-valued, fc3 with bias) agree in the
-- reference interpreter to fp32 rounding, across partition sizes (square or not, one partition or
-- several, i.e. with and without the global perceptron), groups (1, 2, depthwise), kernel sets
-- (including a kernel larger than the partition), reductions and channel counts; stacked blocks
-- stay at fp32 noise. The deploy graph carries exactly the deploy form's keys.
local nn = require 'nn'
local passes = require 'passes'
local fold_repmlp = require 'passes.fold_repmlp'
local cases = require 'tests.unit.reparam_cases'

local function deploy_keys(C, O, H, W, h, w, o)
  local d = {}
  for k, v in pairs(o) do d[k] = v end
  d.deploy = true
  local g = nn.trace(cases.wrap(nn.RepMLP(C, O, H, W, h, w, d)), { 1, C, H, W }, 'deploy')
  local keys = {}
  for _, s in ipairs(g.param_specs) do keys[#keys + 1] = s.key end
  table.sort(keys)
  return keys
end

describe('fold_repmlp', function()
  local seed = 900
  local grid = {
    -- C, O, H, W, h, w, groups, kernels, reduction
    { 4, 4, 8, 8, 4, 4, 1, { 1, 3, 5 }, 1 },
    { 8, 8, 6, 9, 3, 3, 2, { 1, 3 }, 1 },
    { 4, 4, 8, 8, 4, 4, 4, { 1, 3, 5 }, 1 },   -- depthwise
    { 4, 8, 4, 6, 2, 3, 2, { 3 }, 2 },         -- O ~= C, non-square partitions, reduction 2
    { 6, 6, 5, 5, 5, 5, 3, { 1, 3, 5 }, 1 },   -- one partition: no global perceptron
    { 4, 4, 6, 6, 3, 3, 1, { 7 }, 1 },         -- kernel larger than the partition
    { 4, 4, 8, 4, 4, 4, 2, {}, 1 },            -- no local perceptron
  }
  for _, c in ipairs(grid) do
    seed = seed + 1
    local s = seed
    local C, O, H, W, h, w, g, ks, red = unpack(c)
    it(string.format('C%d O%d %dx%d parts %dx%d g%d k{%s} r%d', C, O, H, W, h, w, g, table.concat(ks, ','), red), function()
      local o = { reparam_conv_k = ks, fc3_groups = g, fc1_fc2_reduction = red }
      local rel, after = cases.before_after(cases.wrap(nn.RepMLP(C, O, H, W, h, w, o)), { 1, C, H, W }, s, { fold_repmlp })
      assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
      assert.are.equal(0, cases.count(after, 'batchnorm') + cases.count(after, 'partition_conv2d'))
      assert.are.equal(1, cases.count(after, 'conv2d'))
      local got = {}
      for key in pairs(after.params) do got[#got + 1] = key end
      table.sort(got)
      assert.are.same(deploy_keys(C, O, H, W, h, w, o), got)
    end)
  end

  it('stacked blocks: error stays at fp32 noise through 6 RepMLPs and the whole pipeline', function()
    local m = nn.Sequential()
    for i = 1, 6 do
      m:add(nn.RepMLP(8, 8, 8, 8, 4, 4, { reparam_conv_k = { 1, 3, 5 }, fc3_groups = i % 2 == 0 and 2 or 8 }))
      m:add(nn.ReLU())
    end
    local rel, after = cases.before_after(m, { 1, 8, 8, 8 }, 42, { passes })
    assert.is_true(rel < 1e-5, 'relative difference ' .. rel)
    assert.are.equal(6, cases.count(after, 'conv2d'))
  end)

  it('refuses groups that do not divide the channels, naming the module', function()
    local ok, err = pcall(nn.RepMLP, 6, 6, 8, 8, 4, 4, { fc3_groups = 4 })
    assert.is_false(ok)
    assert.truthy(err:find('fc3_groups=4 must divide', 1, true), err)
  end)
end)
