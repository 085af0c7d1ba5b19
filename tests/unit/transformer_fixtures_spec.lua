-- The reference interpreter agrees with PyTorch on the transformer / parameter-free fixtures: for
-- every case of tests/fixtures/transformers.lua, the bound training-time graph and the deploy graph
-- (after the passes) match tests/fixtures/data/NAME.output.npy (float64 PyTorch, written by
-- tests/fixtures/make_transformer_fixtures.py) within 1e-4 of its largest magnitude.
local cases = require 'tests.unit.fixture_cases'

local file = cases.description('transformers')

describe('transformer fixtures vs PyTorch (reference interpreter)', function()
  for _, name in ipairs(cases.names(file)) do
    it(name, function() cases.check_interpreter(file, name) end)
  end
end)
