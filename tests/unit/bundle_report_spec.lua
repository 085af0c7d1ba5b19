-- What runs is visible: a bundle's JSON names, per layer, the op, the algorithm and why the lowering
-- chose it, the generator with every parameter its kernel was built with, the schedule record used
-- (its parameters, file and signature) or "default", the shapes, MACs, bytes and kernel target; the glue
-- carries the same as a comment beside each kernel call, and the example program's profile names
-- the algorithm. A three-layer model: a conv that an algorithm record makes Winograd F(2x2), a
-- stride-2 conv run direct with a schedule record, and a max-pool with the default schedule, whose
-- name (from the description's path, which holds * / " ?) must stay inside its comment. One build
-- (three small kernels), compiled with -Werror. The lowering's other reasons (the cost model,
-- conv_algo, FOLDC_CONV_ALGO) are checked on its steps, without a build.
local ffi = require 'ffi'
local cjson = require 'cjson'
local sys = require 'sys'
local schedules = require 'schedules'
local targets = require 'targets'
local pipeline = require 'pipeline'
local lower = require 'lower'

pcall(ffi.cdef, [[
  int setenv(const char *name, const char *value, int overwrite);
  int unsetenv(const char *name);
]])
local function setenv(name, value)
  if value then ffi.C.setenv(name, value, 1) else ffi.C.unsetenv(name) end
end

local root = os.getenv('FOLDC_ROOT') or '.'

local MODEL = [[
local nn = require 'nn'
local function Net()
  local m = nn.Module('ReportNet')
  m.a = nn.Conv2d(16, 16, 3, { padding = 1 })
  m.b = nn.Conv2d(16, 16, 3, { padding = 1, stride = 2 })
  function m:forward(x)
    return nn.max_pool2d(self.b(nn.relu(self.a(x))), 2, { stride = 2 })
  end
  return m
end
return { family = 'test', configs = { report_net = { build = Net, input = { 1, 16, 8, 8 } } } }
]]

-- the C comment text of s, as emit's c_text writes it
local function c_text(s)
  return (s:gsub('.', function(c)
    if c:match('^[\32-\126]$') and not c:match('^[\\"?*]$') then return c end
    return string.format('\\%03o', c:byte())
  end))
end

describe('bundle report', function()
  local dir, model, saved, T, sig_b, algo_a, bundle, json, glue
  setup(function()
    dir = sys.tmpdir('foldc-report-spec')
    saved = { os.getenv('FOLDC_SCHEDULES'), os.getenv('FOLDC_CONV_ALGO') }
    setenv('FOLDC_SCHEDULES', dir .. '/schedules')
    setenv('FOLDC_CONV_ALGO', nil)
    sys.mkdir_p(dir .. '/x*"?')
    model = dir .. '/x*"?/report_net.lua'
    sys.write_file(model, MODEL)
    -- the records: conv a runs as F(2x2) (its algorithm record: keyed by its direct kernel's
    -- signature), conv b's kernel gets schedule parameters (keyed by its signature)
    T = targets.resolve('host')
    local program = lower.lower((pipeline.deploy_graph(model, 'random')), { target = T.string, conv_algo = 'direct' })
    local by_name = {}
    for _, s in ipairs(program.steps) do by_name[s.name] = s end
    algo_a = schedules.algo_key(by_name.a.gparams)
    sig_b = schedules.signature('conv2d', schedules.param_list(by_name.b.gparams))
    schedules.save(T.string, {
      [algo_a] = { algo = 'winograd2', comment = '# test' },
      [sig_b] = { params = { loop_order = '1', pad_mode = '1' }, comment = '# test' },
    })
    bundle = dir .. '/bundle'
    local ok, out = sys.run({ 'env', 'FOLDC_SCHEDULES=' .. dir .. '/schedules', 'FOLDC_CONV_ALGO=',
      root .. '/bin/foldc', 'build', model, '--weights', 'random', '-o', bundle })
    assert(ok, out)
    json = cjson.decode(sys.read_file(bundle .. '/report_net.json'))
    glue = sys.read_file(bundle .. '/report_net.c')
  end)
  teardown(function()
    setenv('FOLDC_SCHEDULES', saved[1])
    setenv('FOLDC_CONV_ALGO', saved[2])
    sys.rm_rf(dir)
  end)

  it('the JSON names algorithm, generator, parameters, schedule, shapes, MACs and target per layer', function()
    local L = json.layers
    assert.are.equal(3, #L)
    local a, b, pool = L[1], L[2], L[3]
    assert.are.same({ 'a', 'conv2d', 'winograd F(2x2)', 'conv2d_winograd' }, { a.name, a.op, a.algorithm, a.generator })
    assert.are.same({ 'b', 'conv2d', 'direct', 'conv2d' }, { b.name, b.op, b.algorithm, b.generator })
    assert.are.same({ 'pool2d', 'direct', 'pool2d' }, { pool.op, pool.algorithm, pool.generator })
    -- why: a's algorithm record (file and key), b's stride, the pool's one kernel
    assert.are.equal('algorithm record in ' .. schedules.path(T.string) .. ': ' .. algo_a, a.algorithm_reason)
    assert.are.equal('Winograd not eligible: stride 2x2', b.algorithm_reason)
    assert.are.equal('the only kernel for pool2d', pool.algorithm_reason)
    assert.are.equal('pool2d@' .. model, pool.name:match('^(.*):%d+ %(in ReportNet%)$'))
    -- the full parameter list: the lowering's and the record's
    assert.are.same({ 2, 16, 16, 8, 8, 'relu' }, { a.params.m, a.params.cin, a.params.cout, a.params.out_w, a.params.out_h, a.params.act })
    assert.are.same({ 1, 1, 2, 2, 3 }, { b.params.loop_order, b.params.pad_mode, b.params.stride_x, b.params.stride_y, b.params.kw })
    assert.are.same({ 'max', 2 }, { pool.params.op, pool.params.kw })
    -- the schedule: b's record (parameters, file, signature), the others default
    assert.are.equal('default', a.schedule)
    assert.are.equal('default', pool.schedule)
    assert.are.same({ { loop_order = 1, pad_mode = 1 }, schedules.path(T.string), sig_b },
      { b.schedule.params, b.schedule.file, b.schedule.record })
    assert.are.same({ { 1, 16, 8, 8 } }, a.inputs)
    assert.are.same({ 1, 16, 8, 8 }, a.output)
    assert.are.same({ { 1, 16, 8, 8 } }, b.inputs)
    assert.are.same({ 1, 16, 4, 4 }, b.output)
    assert.are.same({ 1, 16, 2, 2 }, pool.output)
    assert.are.same({ 16 * 16 * 9 * 64, 16 * 16 * 9 * 16, 0 }, { a.macs, b.macs, pool.macs })
    -- the bytes a layer must move at the least: input, weights and bias read, output written, fp32
    assert.are.same({ 4 * (16 * 64 + 16 * 16 * 9 + 16 + 16 * 64), 4 * (16 * 64 + 16 * 16 * 9 + 16 + 16 * 16),
      4 * (16 * 16 + 16 * 4) }, { a.bytes, b.bytes, pool.bytes })
    for _, l in ipairs(L) do
      assert.are.equal(T:kernel_target(), l.target)
      assert.is_truthy(l.kernel:match('^foldc_%x+$'))
    end
    assert.are_not.equal(L[1].kernel, L[2].kernel)
  end)

  it('the glue says the same beside each kernel call, inside one comment each', function()
    for i, l in ipairs(json.layers) do
      local plist = schedules.param_list(l.params)
      local sched = type(l.schedule) == 'table'
        and ('record ' .. schedules.format_params(l.schedule.params) .. ' (' .. l.schedule.file
          .. (l.schedule.cpu and (', tuned on ' .. l.schedule.cpu) or '') .. (l.schedule.exact_cpu == false and ', not this CPU' or '')
          .. ')') or 'default'
      local conv = l.generator ~= 'pool2d' and string.format(' 16->16 3x3 s%d', l.params.stride_y or 1) or ''
      local inputs = {}
      for n, s in ipairs(l.inputs) do inputs[n] = table.concat(s, 'x') end
      local want = table.concat({
        string.format('  case %d:', i - 1),
        '    /* ' .. c_text(string.format('layer %d %s: %s %s%s on %s -> %s, %d MACs', i - 1, l.name, l.op,
          l.algorithm, conv, table.concat(inputs, ' + '), table.concat(l.output, 'x'), l.macs)),
        '     * ' .. c_text('why: ' .. l.algorithm_reason),
        '     * ' .. c_text('generator ' .. l.generator .. ' ' .. table.concat(plist, ' ')),
        '     * ' .. c_text('schedule: ' .. sched) .. ' */',
        '    return ' .. l.kernel .. '(ctx, ',
      }, '\n')
      assert.is_truthy(glue:find(want, 1, true), 'layer ' .. (i - 1) .. ': no\n' .. want)
    end
    assert.is_truthy(glue:find('winograd F(2x2) 16->16 3x3 s1 on 1x16x8x8 -> 1x16x8x8', 1, true))
    assert.is_truthy(glue:find('x\\052\\042\\077/report_net.lua', 1, true)) -- the path's * " ? escaped
    -- a comment ended early or a nested /* would not compile warning-free
    local ok, out = sys.run({ 'cc', '-std=c99', '-Wall', '-Wextra', '-Werror', '-fsyntax-only', '-I', bundle,
      bundle .. '/report_net.c' })
    assert(ok, out)
  end)

  it('the lowering states on each step its node, algorithm and reason', function()
    local graph = pipeline.deploy_graph(model, 'random')
    local function steps(opts)
      opts.target = T.string
      local out = {}
      for i, s in ipairs(lower.lower(graph, opts).steps) do
        assert.are.equal(graph.nodes[i], s.node)
        out[i] = { s.algorithm, s.algorithm_reason }
      end
      return out
    end
    -- a's record, then the lowering's conv_algo and FOLDC_CONV_ALGO above it
    assert.are.same({ 'winograd F(2x2)', 'algorithm record in ' .. schedules.path(T.string) .. ': ' .. algo_a }, steps({})[1])
    assert.are.same({ 'winograd F(4x4)', 'conv_algo=winograd4' }, steps({ conv_algo = 'winograd4' })[1])
    assert.are.same({ 'direct', 'conv_algo=direct' }, steps({ conv_algo = 'direct' })[1])
    setenv('FOLDC_CONV_ALGO', 'winograd6')
    local env = steps({})
    setenv('FOLDC_CONV_ALGO', nil)
    assert.are.same({ 'winograd F(6x6)', 'FOLDC_CONV_ALGO=winograd6' }, env[1])
    assert.are.same({ 'direct', 'Winograd not eligible: stride 2x2' }, env[2])
    -- without records: the cost model's estimates for direct, F(2x2) and F(4x4)
    setenv('FOLDC_SCHEDULES', 'none')
    local cost = steps({})
    setenv('FOLDC_SCHEDULES', dir .. '/schedules')
    assert.is_truthy(cost[1][2]:match('^cost model, 1 core: direct [%d.]+ us, F%(2x2%) [%d.]+ us, F%(4x4%) [%d.]+ us'), cost[1][2])
  end)

  it('the profile names what each layer runs as', function()
    local ok, out = sys.run({ 'make', '-s', '-C', bundle })
    assert(ok, out)
    ok, out = sys.run({ bundle .. '/report_net_main', '--weights', bundle .. '/report_net.weights', '--runs', '1',
      '--profile' })
    assert(ok, out)
    assert.is_truthy(out:find('\n0%s+a%s+conv2d winograd F%(2x2%)%s+[%d.]+'), out)
    assert.is_truthy(out:find('\n1%s+b%s+conv2d direct%s+[%d.]+'), out)
    assert.is_truthy(out:find('GFLOP/s%s+GB/s%s+%% peak\n') or out:find('GFLOP/s%s+GB/s\n'), out)
    ok, out = sys.run({ bundle .. '/report_net_main', '--weights', bundle .. '/report_net.weights', '--runs', '1',
      '--profile', '--json' })
    assert(ok, out)
    local j = cjson.decode(out:match('[^\n]+\n?$'))
    for i, l in ipairs(json.layers) do
      assert.are.same({ l.name, l.op .. ' ' .. l.algorithm, l.bytes }, { j.layers[i].name, j.layers[i].algorithm, j.layers[i].bytes })
    end
  end)
end)
