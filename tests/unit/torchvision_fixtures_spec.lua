-- The reference interpreter agrees with PyTorch on the reduced torchvision families: for every case
-- of tests/fixtures/torchvision.lua, the bound graph and the deploy graph (after the passes) match
-- tests/fixtures/data/NAME.output.npy (float64 torchvision 0.14, written by
-- tests/fixtures/make_torchvision_fixtures.py) within 1e-4 of its largest magnitude.
local cases = require 'tests.unit.fixture_cases'

local file = cases.description('torchvision')

describe('torchvision fixtures vs PyTorch (reference interpreter)', function()
  for _, name in ipairs(cases.names(file)) do
    it(name, function() cases.check_interpreter(file, name) end)
  end
end)
