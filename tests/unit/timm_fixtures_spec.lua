-- The reference interpreter agrees with PyTorch on the reduced timm v0.4.12 models of the attention
-- and MLP families: the bound graph and the deploy graph (after the passes) of each case match
-- tests/fixtures/data/NAME.output.npy (float64, the mirrors of tests/fixtures/make_timm_fixtures.py)
-- within 1e-4 of its largest magnitude. (The convolutional timm cases run end to end only: slow here.)
local cases = require 'tests.unit.fixture_cases'

local file = cases.description('timm')

describe('timm fixtures vs PyTorch (reference interpreter)', function()
  for _, name in ipairs({ 'mixer_mini', 'levit_mini' }) do
    it(name, function() cases.check_interpreter(file, name) end)
  end
end)
