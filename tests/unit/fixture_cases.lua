-- Shared by the fixture specs (tests/fixtures/<description>.lua with data written by the
-- make_*fixtures.py scripts): the cases of a description, a tolerance check, and the check that a
-- case's graph, as given and after the passes, reproduces the float64 PyTorch output in the
-- reference interpreter within 1e-4 of its largest magnitude.
local zoo = require 'zoo'
local pipeline = require 'pipeline'
local passes = require 'passes'
local interpreter = require 'interpreter'
local npy = require 'weights.npy'
local tensor = require 'tensor'
local assert = require 'luassert'

local M = {}

local root = os.getenv('FOLDC_ROOT') or '.'
M.data = root .. '/tests/fixtures/data/'

function M.description(name)
  return root .. '/tests/fixtures/' .. name .. '.lua'
end

-- The config names of a description file, sorted.
function M.names(file)
  local names = {}
  for name in pairs(zoo.load_file(file).configs) do names[#names + 1] = name end
  table.sort(names)
  return names
end

-- got has want's shape, only finite values, and is within tol of want (relative to max |want|).
function M.within(what, got, want, tol)
  assert.are.equal(tensor.shape_str(want.shape), tensor.shape_str(got.shape), what .. ' shape')
  for i = 0, got.numel - 1 do
    local v = got.data[i]
    assert.is_true(v == v and math.abs(v) < math.huge, what .. ': non-finite value at ' .. i)
  end
  local rel, maxdiff, maxref = interpreter.rel_diff(got, want)
  assert.is_true(rel <= tol, string.format('%s: max |got - want| = %.3g, max |want| = %.3g, relative %.3g > %g',
    what, maxdiff, maxref, rel, tol))
end

-- Case NAME of description FILE bound to its fixture weights, run in the interpreter as given and
-- after the passes on the fixture input, against the fixture output. Returns the bound graph.
function M.check_interpreter(file, name)
  local base = M.data .. name
  local graph = pipeline.bound_graph(file .. ':' .. name, base .. '.safetensors')
  local x = npy.read(base .. '.input.npy')
  local want = npy.read(base .. '.output.npy')
  assert.are.equal(tensor.shape_str(graph.input.shape), tensor.shape_str(x.shape), 'input shape')
  M.within(name .. ' (training-time graph)', interpreter.run(graph, x)[1], want, 1e-4)
  M.within(name .. ' (deploy graph)', interpreter.run(passes.run(graph:clone()), x)[1], want, 1e-4)
  return graph
end

return M
