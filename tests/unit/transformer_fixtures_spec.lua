-- The reference interpreter agrees with PyTorch on the transformer / parameter-free fixtures: for
-- every case of tests/fixtures/transformers.lua, the bound training-time graph and the deploy graph
-- (after the passes) match tests/fixtures/data/NAME.output.npy (float64 PyTorch, written by
-- tests/fixtures/make_transformer_fixtures.py) within 1e-4 of its largest magnitude.
local zoo = require 'zoo'
local pipeline = require 'pipeline'
local passes = require 'passes'
local interpreter = require 'interpreter'
local npy = require 'weights.npy'
local tensor = require 'tensor'

local root = os.getenv('FOLDC_ROOT') or '.'
local file = root .. '/tests/fixtures/transformers.lua'
local data = root .. '/tests/fixtures/data/'
local TOL = 1e-4

local names = {}
for name in pairs(zoo.load_file(file).configs) do names[#names + 1] = name end
table.sort(names)

local function check(what, got, want)
  assert.are.equal(tensor.shape_str(want.shape), tensor.shape_str(got.shape), what .. ' output shape')
  local rel, maxdiff, maxref = interpreter.rel_diff(got, want)
  assert.is_true(rel <= TOL, string.format('%s: max |got - want| = %.3g, max |want| = %.3g, relative %.3g > %g',
    what, maxdiff, maxref, rel, TOL))
end

describe('transformer fixtures vs PyTorch (reference interpreter)', function()
  for _, name in ipairs(names) do
    local base = data .. name
    it(name, function()
      local graph = pipeline.bound_graph(file .. ':' .. name, base .. '.safetensors')
      local x = npy.read(base .. '.input.npy')
      local want = npy.read(base .. '.output.npy')
      assert.are.equal(tensor.shape_str(graph.input.shape), tensor.shape_str(x.shape), 'input shape')
      check(name .. ' (training-time graph)', interpreter.run(graph, x)[1], want)
      local deploy = passes.run(graph:clone())
      check(name .. ' (deploy graph)', interpreter.run(deploy, x)[1], want)
    end)
  end
end)
