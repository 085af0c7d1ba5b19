-- The structural folds against PyTorch, on the cases of tests/fixtures/reparam.lua (data written by
-- tests/fixtures/make_reparam_fixtures.py): the training-time graph and the deploy graph in the
-- reference interpreter match the float64 PyTorch output within 1e-4 of its largest magnitude, the
-- deploy-form weights (NAME_deploy, the reference's own conversion) load into the deploy form and
-- give the same output, and the weights `foldc fold` writes equal the reference conversion's
-- within 1e-5 relative, tensor by tensor, with exactly its key set.
local cases = require 'tests.unit.fixture_cases'
local weights = require 'weights'
local sys = require 'sys'

local file = cases.description('reparam')
local data = cases.data

describe('re-parameterisation fixtures vs PyTorch', function()
  for _, name in ipairs(cases.names(file)) do
    local base = data .. name
    it(name .. ' (interpreter, training-time and deploy graphs)', function()
      assert.is_true(sys.exists(base .. '.safetensors'), 'run /usr/bin/python3 tests/fixtures/make_reparam_fixtures.py')
      local graph = cases.check_interpreter(file, name)
      assert.are.equal(name:match('_deploy$') and 'deploy' or nil, graph.form)
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
          for _, key in ipairs(want_keys) do cases.within(key, got.tensors[key], want.tensors[key], 1e-5) end
        end)
        os.remove(out)
        assert(ok, err)
      end)
    end
  end
end)
