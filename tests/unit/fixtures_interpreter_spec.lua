-- The reference interpreter agrees with PyTorch: for every case of tests/fixtures/fixtures.lua, the
-- bound training-time graph and the deploy graph (after the passes), run on the fixture's input,
-- match the float64 PyTorch eval() output (tests/fixtures/data/NAME.output.npy, written by
-- tests/fixtures/make_fixtures.py) within 1e-4 of its largest magnitude.
local cases = require 'tests.unit.fixture_cases'
local sys = require 'sys'

local file = cases.description('fixtures')
local names = cases.names(file)

describe('fixtures vs PyTorch (reference interpreter)', function()
  it('every fixture config has its data', function()
    local missing = {}
    for _, name in ipairs(names) do
      if not sys.exists(cases.data .. name .. '.safetensors') then missing[#missing + 1] = name end
    end
    assert.are.same({}, missing, 'run /usr/bin/python3 tests/fixtures/make_fixtures.py')
  end)

  for _, name in ipairs(names) do
    if sys.exists(cases.data .. name .. '.safetensors') then
      it(name, function() cases.check_interpreter(file, name) end)
    end
  end
end)
