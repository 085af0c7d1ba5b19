-- foldc tune on one tiny conv kernel with a tiny budget: the search loop finds a valid best,
-- a wrong candidate (it computes a ReLU on a kernel without one) is rejected by the numerics check,
-- the result is saved to schedules/<target>/ and picked up by a later build (kernels.compile),
-- and a second run resumes (skips the recorded kernel; with --force re-uses the logged
-- measurements instead of compiling them again); the run-off in the model records, per kernel,
-- the fastest of its default and its candidates there, with every time in the comment, and the
-- prefetch run-off changes only a big conv's prefetch, the record kept unless beaten. Timing
-- itself is not checked.
local tune = require 'tune'
local kernels = require 'kernels'
local schedules = require 'schedules'
local sys = require 'sys'

local target = 'x86-64-linux-avx-avx2-f16c-fma-sse41'
local gparams = { cin = 8, cout = 16, in_w = 6, in_h = 5, out_w = 6, out_h = 5, kw = 3, kh = 3, stride_x = 1,
  stride_y = 1, pad_x = 1, pad_y = 1, dil_x = 1, dil_y = 1, groups = 1, act = 'none', residual = false }
local function dims3(c, w, h) return { { c, 1 }, { w, c }, { h, c * w } } end
local kernel = { generator = 'conv2d', gparams = gparams, macs = 16 * 8 * 9 * 30, name = 'tiny', count = 1,
  dims = { dims3(8, 6, 5), { { 16, 1 }, { 8, 16 }, { 3, 128 }, { 3, 384 } }, { { 16, 1 } }, dims3(16, 6, 5) } }
kernel.sig = schedules.signature('conv2d', schedules.param_list(gparams))

describe('foldc tune', function()
  local dir, root
  local sink = { write = function() end, flush = function() end }
  setup(function()
    dir = sys.tmpdir('foldc-tune-spec')
    root = schedules.root
    -- schedules.root() reads FOLDC_SCHEDULES; point it at a scratch folder
    schedules.root = function() return dir end
  end)
  teardown(function()
    schedules.root = root
    sys.rm_rf(dir)
  end)

  -- A model of 1x1 convs with ReLUs between (channels[1] -> channels[2] -> ...) on a w x w input,
  -- written to the scratch folder: its deploy graph and its kernels' signatures, in order.
  local function conv_chain(name, channels, w)
    local pipeline = require 'pipeline'
    local lower = require 'lower'
    local src = { "local nn = require 'nn'", 'local function Net()', "  local m = nn.Module('Chain')" }
    for i = 1, #channels - 1 do
      src[#src + 1] = string.format('  m.c%d = nn.Conv2d(%d, %d, 1)', i, channels[i], channels[i + 1])
    end
    src[#src + 1] = '  function m:forward(x)'
    for i = 1, #channels - 1 do
      src[#src + 1] = string.format(i < #channels - 1 and '    x = nn.relu(self.c%d(x))' or '    return self.c%d(x)', i)
    end
    src[#src + 1] = '  end'
    src[#src + 1] = '  return m'
    src[#src + 1] = 'end'
    src[#src + 1] = string.format("return { family = 'test', configs = { %s = { build = Net, input = { 1, %d, %d, %d } } } }",
      name, channels[1], w, w)
    local model = dir .. '/' .. name .. '.lua'
    sys.write_file(model, table.concat(src, '\n') .. '\n')
    local graph = pipeline.deploy_graph(model, 'random')
    local sigs = {}
    for _, step in ipairs(lower.lower(graph, { target = target }).steps) do
      if step.kind == 'kernel' then sigs[#sigs + 1] = schedules.signature(step.generator, schedules.param_list(step.gparams)) end
    end
    return graph, sigs
  end

  local first
  it('searches, rejects a wrong candidate and records the best', function()
    first = tune.run({ kernel }, { target = target, minutes = 0.02, out = sink, batch_ms = 1, force = true,
      extra = { { act = 'relu' } } })
    local r = first[kernel.sig]
    assert.is_truthy(r)
    assert.is_true(r.tried >= 3)
    assert.is_true(r.rejected >= 1)
    assert.is_truthy(r.us and r.us > 0)
    assert.is_nil(r.best.act)
    local db = schedules.load(target)
    assert.is_truthy(db[kernel.sig])
    assert.is_truthy(db[kernel.sig].comment:match('GFLOP/s'))
    local text = sys.read_file(schedules.path(target))
    assert.is_truthy(text:find(kernel.sig, 1, true))
  end)

  it('is used by a later build for that target', function()
    local db = schedules.load(target)
    db[kernel.sig] = { params = { tile_co = 1, tile_x = 3 }, comment = '# test' }
    schedules.save(target, db)
    local program = { steps = { { kind = 'kernel', generator = 'conv2d', gparams = gparams } } }
    local distinct = kernels.compile(program, target)
    assert.are.equal('tile_co=1 tile_x=3', program.steps[1].schedule)
    assert.is_truthy(table.concat(distinct[1].params, ' '):find('tile_x=3', 1, true))
    assert.is_true(sys.exists(distinct[1].object))
  end)

  it('chooses each kernel\'s schedule in the model among its default and its candidates', function()
    local graph, sigs = conv_chain('runoff_net', { 32, 64, 32 }, 12)
    local finals = { [sigs[1]] = { { tile_co = 1, tile_x = 2 }, { tile_co = 2, tile_x = 4 } }, [sigs[2]] = { { tile_x = 3 } } }
    local r = tune.model_runoff(graph, finals, { target = target, out = sink, rounds = 2, runs = 3 })
    assert.are.equal(2, r.kept + r.reverted)
    local db = schedules.load(target)
    for sig, list in pairs(finals) do
      local rec = db[sig]
      local times = {}
      for name, ms in rec.comment:gmatch('([%w_= ]+) ([%d.]+)[,:]') do times[name:match('^%s*(.-)%s*$')] = tonumber(ms) end
      for name, ms in rec.comment:gmatch('([%w_= ]+) ([%d.]+)$') do times[name:match('^%s*(.-)%s*$')] = tonumber(ms) end
      local def = tonumber(rec.comment:match('in the model %(ms%): default ([%d.]+)'))
      assert.is_truthy(def, rec.comment)
      for _, c in ipairs(list) do assert.is_truthy(times[schedules.format_params(c)], rec.comment) end
      -- (the comment rounds to 0.1 us; the choice used the unrounded times)
      local chosen, slack = schedules.format_params(rec.params), 1e-4
      if chosen == 'default' then
        for _, c in ipairs(list) do assert.is_true(times[schedules.format_params(c)] >= def * 0.99 - slack, rec.comment) end
        assert.is_truthy(rec.comment:find(': default kept', 1, true), rec.comment)
      else
        assert.is_true(times[chosen] <= def * 0.99 + slack, rec.comment)
        for _, c in ipairs(list) do assert.is_true(times[chosen] <= times[schedules.format_params(c)] + slack, rec.comment) end
      end
    end
  end)

  it('chooses the weight prefetch of the big convs in the model, keeping the rest of their records', function()
    local graph, sigs = conv_chain('prefetch_net', { 16, 256, 256, 16 }, 6)
    local big, small = sigs[2], sigs[3] -- 256 KB of weights; 16 KB
    local db = schedules.load(target)
    db[big] = { params = { tile_co = 1, tile_x = 3, prefetch = 16 }, comment = '# test; prefetch in the model (ms): old' }
    db[small] = { params = { tile_x = 2 }, comment = '# small' }
    schedules.save(target, db)
    local only = { [big] = true, [small] = true }
    local r = tune.prefetch_runoff(graph, { target = target, out = sink, rounds = 2, runs = 3, only = only })
    assert.are.equal(1, r.kept + r.reverted)
    db = schedules.load(target)
    assert.are.equal('tile_x=2', schedules.format_params(db[small].params))
    assert.are.equal('# small', db[small].comment)
    local rec = db[big]
    assert.are.equal(1, tonumber(rec.params.tile_co))
    assert.are.equal(3, tonumber(rec.params.tile_x))
    -- one note (the old one replaced): the record, then off, 32 and 64 channels ahead
    local _, notes = rec.comment:gsub('prefetch in the model', '')
    assert.are.equal(1, notes, rec.comment)
    local times = {}
    for name, ms in rec.comment:match('prefetch in the model %(ms%): (.*)$'):gmatch('([%w_= -]+) ([%d.]+)') do
      times[name:match('^%s*(.-)%s*$')] = tonumber(ms)
    end
    local base = times['prefetch=16 tile_co=1 tile_x=3']
    assert.is_truthy(base, rec.comment)
    for _, pf in ipairs({ -1, 32, 64 }) do
      assert.is_truthy(times['prefetch=' .. pf .. ' tile_co=1 tile_x=3'], rec.comment)
    end
    local chosen, slack = times[schedules.format_params(rec.params)], 1e-4
    if tonumber(rec.params.prefetch) == 16 then
      assert.is_truthy(rec.comment:find(': record kept', 1, true), rec.comment)
      for _, ms in pairs(times) do assert.is_true(ms >= base * 0.99 - slack, rec.comment) end
    else
      assert.is_true(chosen <= base * 0.99 + slack, rec.comment)
      for _, ms in pairs(times) do assert.is_true(chosen <= ms + slack, rec.comment) end
    end
  end)

  it('searches linear_tokens tiles within the registers, dividing the channels, then kb', function()
    local avx512 = 'x86-64-linux-avx-avx2-avx512-fma'
    local stage1, refine = tune.space('linear_tokens', { cin = 384, cout = 1536, rows = 197 }, avx512)
    assert.is_true(#stage1 > 10)
    for _, c in ipairs(stage1) do
      assert.is_true(c.tile_co * c.tile_r + c.tile_co + 1 <= 32, schedules.format_params(c))
      assert.are.equal(0, 1536 % (c.tile_co * 16))
    end
    local more = refine({ tile_co = 4, tile_r = 6 })
    assert.is_true(#more > 0)
    for _, c in ipairs(more) do assert.are.equal(0, 384 % c.kb); assert.are.equal(6, c.tile_r) end
  end)

  it('resumes: recorded kernels are skipped, logged candidates are not measured again', function()
    local again = tune.run({ kernel }, { target = target, minutes = 0.02, out = sink, batch_ms = 1 })
    assert.is_nil(again[kernel.sig])
    local db = schedules.load(target)
    db[kernel.sig] = nil
    schedules.save(target, db)
    local resumed = tune.run({ kernel }, { target = target, minutes = 0.02, out = sink, batch_ms = 1,
      extra = { { act = 'relu' } } })
    assert.is_truthy(resumed[kernel.sig])
    assert.is_true(resumed[kernel.sig].fresh < first[kernel.sig].fresh)
  end)
end)
