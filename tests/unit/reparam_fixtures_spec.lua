-- The structural folds against PyTorch, on the cases of tests/fixtures/reparam.lua (data written by
-- tests/fixtures/make_reparam_fixtures.py): the training-time graph and the deploy graph in the
-- reference interpreter match the float64 PyTorch output within 1e-4 of its largest magnitude, the
-- deploy-form weights (NAME_deploy, the reference's own conversion) load into the deploy form and
-- give the same output, and the weights `foldc fold` writes equal the reference conversion's
-- within 1e-5 relative, tensor by tensor, with exactly its key set.
local zoo = require 'zoo'
local pipeline = require 'pipeline'
local passes = require 'passes'
local interpreter = require 'interpreter'
local npy = require 'weights.npy'
local weights = require 'weights'
local tensor = require 'tensor'
local sys = require 'sys'

local root = os.getenv('FOLDC_ROOT') or '.'
local file = root .. '/tests/fixtures/reparam.lua'
local data = root .. '/tests/fixtures/data/'

local names = {}
for name in pairs(zoo.load_file(file).configs) do names[#names + 1] = name end
table.sort(names)

local function within(what, got, want, tol)
  assert.are.equal(tensor.shape_str(want.shape), tensor.shape_str(got.shape), what .. ' shape')
  local rel, maxdiff, maxref = interpreter.rel_diff(got, want)
  assert.is_true(rel <= tol, string.format('%s: max |got - want| = %.3g, max |want| = %.3g, relative %.3g > %g',
    what, maxdiff, maxref, rel, tol))
end

describe('re-parameterisation fixtures vs PyTorch', function()
  for _, name in ipairs(names) do
    local base = data .. name
    it(name .. ' (interpreter, training-time and deploy graphs)', function()
      assert.is_true(sys.exists(base .. '.safetensors'), 'run /usr/bin/python3 tests/fixtures/make_reparam_fixtures.py')
      local graph = pipeline.bound_graph(file .. ':' .. name, base .. '.safetensors')
      assert.are.equal(name:match('_deploy$') and 'deploy' or nil, graph.form)
      local x = npy.read(base .. '.input.npy')
      local want = npy.read(base .. '.output.npy')
      within(name .. ' as given', interpreter.run(graph, x)[1], want, 1e-4)
      within(name .. ' folded', interpreter.run(passes.run(graph:clone()), x)[1], want, 1e-4)
    end)
    if sys.exists(data .. name .. '_deploy.safetensors') then
      it(name .. ': foldc fold equals the reference conversion', function()
        local out = os.tmpname()
        local ok, err = pcall(function()
          local verb = require 'verbs.fold'
          verb.run({ model = file .. ':' .. name, weights = base .. '.safetensors', output = out })
          local got, want = weights.load(out), weights.load(data .. name .. '_deploy.safetensors')
          local want_keys = {}
          for _, key in ipairs(want.names) do
            if want.tensors[key].data then want_keys[#want_keys + 1] = key end
          end
          table.sort(want_keys)
          local got_keys = { unpack(got.names) }
          table.sort(got_keys)
          assert.are.same(want_keys, got_keys)
          for _, key in ipairs(want_keys) do within(key, got.tensors[key], want.tensors[key], 1e-5) end
        end)
        os.remove(out)
        assert(ok, err)
      end)
    end
  end
end)
