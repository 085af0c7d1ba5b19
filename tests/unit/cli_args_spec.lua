-- Command-line arguments are checked before any work, with one line naming the option and the
-- value: the numeric options (compiler/numeric_args.lua) take only a plain decimal in range, and
-- foldc run's --output must be a file in an existing, writable folder.
local numeric_args = require 'numeric_args'
local cli = require 'cli'

describe('numeric options', function()
  it('accept an integer in range and nothing else', function()
    local runs = numeric_args.integer('--runs', 1, 1000000)
    assert.equal(1, runs('1'))
    assert.equal(1000000, runs('1000000'))
    for _, bad in ipairs({ '0', '1000001', '-3', '2.5', '1e3', '0x10', ' 5', 'abc', '', 'inf', 'nan', '99999999999999999999' }) do
      local v, err = runs(bad)
      assert.is_nil(v, bad)
      assert.equal("--runs '" .. bad .. "': expected an integer from 1 to 1000000", err)
    end
  end)

  it('accept a positive number up to the bound', function()
    local minutes = numeric_args.positive('--minutes', 10080)
    assert.equal(0.1, minutes('0.1'))
    assert.equal(15, minutes('15'))
    assert.equal(2, minutes('2.'))
    for _, bad in ipairs({ '0', '0.0', '.', '-1', '10081', 'inf', 'nan', '1e2', '0x1', '1.2.3', '' }) do
      assert.is_nil((minutes(bad)), bad)
    end
    assert.equal("--minutes '?x': expected a number above 0 and at most 10080", select(2, minutes('\nx')))
  end)

  it('take thread count 0 as one per core, like the bundle', function()
    local threads = numeric_args.threads('--threads')
    assert.equal(2, threads('2'))
    assert.equal(256, threads('256'))
    local n = threads('0')
    assert.is_true(n >= 1 and n <= 256)
    assert.equal("--threads '257': expected an integer from 0 to 256", select(2, threads('257')))
  end)

  it('are checked by every verb before any work', function()
    local m = 'tests/fixtures/fixtures.lua:resnet18_w8'
    for _, case in ipairs({
      { { 'bench', m, '--threads', '100000' }, "--threads '100000'" },
      { { 'bench', m, '--threads=-1' }, "--threads '-1'" },
      { { 'bench', m, '--runs', '0' }, "--runs '0'" },
      { { 'bench', m, '--compare', '--rounds', '0' }, "--rounds '0'" },
      { { 'tune', m, '--minutes', '0' }, "--minutes '0'" },
      { { 'tune', m, '--threads', 'x' }, "--threads 'x'" },
      { { 'check', m, '--seed=-1' }, "--seed '-1'" },
      { { 'check', m, '--seed', '4294967296' }, "--seed '4294967296'" },
    }) do
      local ok, err = pcall(cli.main, case[1])
      assert.is_false(ok)
      assert.truthy(err:find(case[2], 1, true), err)
      assert.falsy(err:find('\n'), err)
    end
  end)

  it('foldc run refuses an output path it could not write, before compiling', function()
    local m, w = 'tests/fixtures/fixtures.lua:resnet18_w8', 'tests/fixtures/data/resnet18_w8.safetensors'
    local input = 'tests/fixtures/data/resnet18_w8.input.npy'
    for _, case in ipairs({
      { '', '--output "": empty path' },
      { 'tests/', '--output "tests/": ends in /' },
      { 'tests', '--output "tests": is a folder' },
      { 'no/such/folder/y.npy', '--output "no/such/folder/y.npy": folder no/such/folder does not exist' },
    }) do
      local ok, err = pcall(cli.main, { 'run', m, '--weights', w, '--input', input, '--output', case[1] })
      assert.is_false(ok)
      assert.truthy(err:find(case[2], 1, true), err)
    end
  end)
end)
