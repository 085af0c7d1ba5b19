-- Convolution algorithm records (schedules/<target>/: `algo <direct conv2d signature>` lines) and
-- foldc tune's algorithm run-off: the records round-trip through the schedules file, a bad value
-- is refused naming the file, line and key; the lowering stage (lower.choose) takes FOLDC_CONV_ALGO
-- over the record over the cost model; a real `foldc tune` of a three-conv model (two signatures, one shared by two
-- layers) writes a record per signature whose choice is the fastest time in its comment, a later
-- `foldc build` runs every conv as its record says (the bundle's JSON report), a second tune
-- resumes, and a variant whose output is off is not chosen. Which algorithm wins is not checked.
local ffi = require 'ffi'
local schedules = require 'schedules'
local winograd = require 'winograd'
local conv2d = require 'ops.conv2d'
local lower = require 'lower'
local targets = require 'targets'
local kernels = require 'kernels'
local pipeline = require 'pipeline'
local tune = require 'tune'
local sys = require 'sys'
local dkjson = require 'dkjson'

pcall(ffi.cdef, [[
  int setenv(const char *name, const char *value, int overwrite);
  int unsetenv(const char *name);
]])
local function setenv(name, value)
  if value then ffi.C.setenv(name, value, 1) else ffi.C.unsetenv(name) end
end

local root = os.getenv('FOLDC_ROOT') or '.'

-- a stride-1 3x3 conv node (as winograd_spec's)
local function node(cin, cout, h, w)
  return {
    op = 'conv2d',
    attrs = { cin = cin, cout = cout, groups = 1, kernel = { 3, 3 }, stride = { 1, 1 }, padding = { 1, 1 },
              dilation = { 1, 1 }, act = 'relu' },
    inputs = { { shape = { 1, cin, h, w } } },
    outputs = { { shape = { 1, cout, h, w } } },
  }
end

local MODEL = [[
local nn = require 'nn'
local function Net()
  local m = nn.Module('AlgoNet')
  m.a = nn.Conv2d(16, 16, 3, { padding = 1 })
  m.b = nn.Conv2d(16, 16, 3, { padding = 1 })
  m.c = nn.Conv2d(16, 32, 3, { padding = 1 })
  function m:forward(x) return self.c(nn.relu(self.b(nn.relu(self.a(x))))) end
  return m
end
return { family = 'test', configs = { algo_net = { build = Net, input = { 1, 16, 12, 12 } } } }
]]

describe('convolution algorithm records', function()
  local dir, saved_env
  setup(function()
    dir = sys.tmpdir('foldc-algo-spec')
    saved_env = { os.getenv('FOLDC_SCHEDULES'), os.getenv('FOLDC_CONV_ALGO') }
    setenv('FOLDC_SCHEDULES', dir .. '/schedules')
    setenv('FOLDC_CONV_ALGO', nil)
  end)
  teardown(function()
    setenv('FOLDC_SCHEDULES', saved_env[1])
    setenv('FOLDC_CONV_ALGO', saved_env[2])
    sys.rm_rf(dir)
  end)

  it('round-trip through the schedules file beside the kernel records; a bad value names file, line and key', function()
    local target = 'x86-64-linux-test_roundtrip'
    local key = lower.algo_key(node(64, 64, 56, 56), targets.resolve(target))
    assert.is_truthy(key:match('^algo conv2d act=relu cin=64 cout=64 .* w_block=16$'))
    local ksig = schedules.signature('conv2d', schedules.param_list(conv2d.direct_params(node(64, 64, 56, 56), 16)))
    assert.are.equal('algo ' .. ksig, key)
    local db = {
      [key] = { algo = 'winograd4', comment = '# direct 0.970 ms, winograd2 0.520 ms, winograd4 0.400 ms in the model' },
      [ksig] = { params = { tile_co = '4', tile_x = '6' }, comment = '# 226.9 GFLOP/s' },
    }
    schedules.save(target, db)
    local text = sys.read_file(schedules.path(target))
    assert.is_truthy(text:find('\n' .. key .. '\twinograd4\t# direct 0.970 ms', 1, true))
    assert.is_truthy(text:find('\n' .. ksig .. '\ttile_co=4 tile_x=6\t# 226.9', 1, true))
    assert.are.same(db, schedules.load(target))
    schedules.save(target, schedules.load(target))
    assert.are.equal(text, sys.read_file(schedules.path(target)))
    sys.write_file(schedules.path(target), text:gsub('\twinograd4\t', '\twinograd5\t'))
    local ok, err = pcall(schedules.load, target)
    assert.is_false(ok)
    assert.is_truthy(err:find(schedules.path(target) .. ':2: algorithm record "' .. key .. '": expected direct, winograd2, winograd4, got "winograd5"', 1, true))
    sys.rm_rf(dir .. '/schedules/' .. target) -- the nearest records of the targets below
  end)

  it('lower.choose: FOLDC_CONV_ALGO, then the record for the target, then the cost model', function()
    local target = 'x86-64-linux-test_choose'
    local T = targets.resolve(target)
    local n = node(64, 64, 56, 56)
    local key = lower.algo_key(n, T)
    -- the lowering stage's state: the target, its records, the forced algorithm
    local function choose(nd, mode, t)
      t = t or T
      return lower.choose(nd, { target = t, records = schedules.load(t.string), conv_algo = mode }).algo
    end
    assert.are.equal(4, choose(n)) -- no record: the cost model (F(4x4) at 56x56)
    schedules.save(target, { [key] = { algo = 'direct', comment = '# test' } })
    assert.is_nil(choose(n))
    -- another target of the same vector width reads them (the nearest records); one of another width does not
    assert.is_nil(choose(n, nil, targets.resolve('x86-64-linux-other')))
    assert.are.equal(4, choose(n, nil, targets.resolve('x86-64-linux-avx-avx2-fma')))
    assert.are.equal(4, choose(node(64, 64, 28, 28)))
    schedules.save(target, { [key] = { algo = 'winograd2', comment = '# test' } })
    assert.are.equal(2, choose(n))
    setenv('FOLDC_CONV_ALGO', 'auto')
    assert.are.equal(2, choose(n))
    setenv('FOLDC_CONV_ALGO', 'direct')
    assert.is_nil(choose(n))
    setenv('FOLDC_CONV_ALGO', 'winograd4')
    assert.are.equal(4, choose(n))
    assert.is_nil(choose(n, 'direct')) -- the lowering's conv_algo
    setenv('FOLDC_CONV_ALGO', nil)
    setenv('FOLDC_SCHEDULES', 'none')
    assert.are.equal(4, choose(n))
    setenv('FOLDC_SCHEDULES', dir .. '/schedules')
  end)

  describe('foldc tune on a model with eligible convs', function()
    local model, target, convs
    local function foldc(...)
      local argv = { 'env', 'FOLDC_SCHEDULES=' .. dir .. '/schedules', 'FOLDC_CONV_ALGO=', root .. '/bin/foldc', ... }
      local ok, out = sys.run(argv)
      assert(ok, table.concat({ ... }, ' ') .. ': ' .. out)
      return out
    end
    -- build the model; for each conv layer, the suffix of its weights in the bundle
    local function built_algos()
      local out = dir .. '/bundle'
      foldc('build', model, '--weights', 'random', '-o', out)
      local report = dkjson.decode(sys.read_file(out .. '/algo_net.json'))
      local got = {}
      for _, w in ipairs(report.weights) do
        local layer = w.key:match('^(%a)%.weight@')
        if layer then got[layer] = w.key:match('@(winograd%d)') or w.key:match('@(hwio)') end
      end
      return got
    end
    local suffix = { direct = 'hwio', winograd2 = 'winograd2', winograd4 = 'winograd4' }

    setup(function()
      model = dir .. '/algo_net.lua'
      sys.write_file(model, MODEL)
      target = kernels.resolve_target('host')
      convs = tune.algo_convs((pipeline.deploy_graph(model, 'random')), target)
    end)

    it('records the fastest algorithm per signature, and builds use the records', function()
      assert.are.equal(2, #convs)
      assert.are.same({ 'a', 'b' }, convs[1].layers)
      assert.are.same({ 'c' }, convs[2].layers)
      local text = foldc('tune', model, '--minutes', '0.1')
      assert.is_truthy(text:find('algorithm run-off in the model: 2 of 2 eligible conv signatures to choose (3 layers', 1, true))
      local db = schedules.load(target)
      for i, c in ipairs(convs) do
        local r = db[c.key]
        assert.is_truthy(r, c.key)
        local ms = {}
        for algo, t in r.comment:gmatch('(%w+) ([%d.]+) ms') do ms[algo] = tonumber(t) end
        assert.is_truthy(ms.direct and ms.winograd2 and ms.winograd4, r.comment)
        assert.is_truthy(r.comment:find(i == 1 and '(2 layers' or '(1 layer,', 1, true), r.comment)
        for _, t in pairs(ms) do assert.is_true(ms[r.algo] <= t, r.comment) end
      end
      local got = built_algos()
      for _, c in ipairs(convs) do
        for _, layer in ipairs(c.layers) do assert.are.equal(suffix[db[c.key].algo], got[layer], layer) end
      end
      -- another record, another kernel: the build follows the file
      local other = { direct = 'winograd4', winograd2 = 'direct', winograd4 = 'winograd2' }
      for _, c in ipairs(convs) do db[c.key].algo = other[db[c.key].algo] end
      schedules.save(target, db)
      got = built_algos()
      for _, c in ipairs(convs) do
        for _, layer in ipairs(c.layers) do assert.are.equal(suffix[db[c.key].algo], got[layer], layer) end
      end
    end)

    it('resumes: convs with a record are not run off again', function()
      local before = sys.read_file(schedules.path(target))
      local text = foldc('tune', model, '--minutes', '0.1')
      assert.is_truthy(text:find('algorithm run-off in the model: 0 of 2 eligible conv signatures to choose', 1, true))
      assert.are.equal(before, sys.read_file(schedules.path(target)))
    end)

    it('does not choose a variant whose model output differs from the direct one', function()
      local lines = {}
      local sink = { write = function(_, ...) lines[#lines + 1] = table.concat({ ... }) end, flush = function() end }
      local res = tune.algo_runoff((pipeline.deploy_graph(model, 'random')), { target = target, force = true,
        dry_run = true, rounds = 2, runs = 3, tol = 1e-12, out = sink })
      for _, algo in ipairs({ 'winograd2', 'winograd4' }) do
        -- Winograd rounds differently, within the project's 1e-4 but not 1e-12
        assert.is_true(res.err[algo] > 1e-12 and res.err[algo] < 1e-4, algo .. ' ' .. tostring(res.err[algo]))
      end
      for _, c in ipairs(convs) do assert.are.equal('direct', res.chosen[c.key]) end
      assert.is_truthy(table.concat(lines):find('winograd4 rejected: the model output differs from direct', 1, true))
    end)
  end)
end)
