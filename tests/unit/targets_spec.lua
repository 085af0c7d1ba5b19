-- compiler/targets/: --target names resolve to their tiers (host to Halide's own host string, as
-- before), comma lists group by architecture, bad text is refused with one line before anything
-- runs; every family file provides every field the consumers use, with values they can use; a
-- multi-tier target gives every tier the kernels' suffix and one baseline runtime; the tuner's tiles
-- fit the target's registers; tracing and folding a model neither load the kernel driver nor read
-- the schedule database (the lowering stage does).
local targets = require 'targets'
local sys = require 'sys'

local AVX512 = 'x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41'
local AVX2 = 'x86-64-linux-avx-avx2-f16c-fma-sse41'
local SSE41 = 'x86-64-linux-sse41'

describe('targets', function()
  it('resolves host to the string Halide gives for this machine', function()
    local f = targets.families.x86.luajit_arch == jit.arch and targets.families.x86 or targets.families.arm
    local want = sys.capture({ '/usr/lib/' .. f.multiarch .. '/halide14/get_host_target' }):gsub('%s+$', '')
    local T = targets.resolve('host')
    assert.are.equal(want, T.string)
    assert.are.same({ want }, T.tiers)
    assert.are.equal(T, targets.resolve(nil))
    assert.are.equal(want, require('kernels').resolve_target('host'))
    assert.are.equal(want .. '-no_runtime-user_context', T:kernel_target())
    assert.are.equal(want .. '-user_context', T:runtime_target())
    assert.are.equal(want, T:native_tier())
  end)

  it('resolves every name to its tiers, in priority order', function()
    local cases = {
      ['x86-64'] = { AVX512, AVX2, SSE41 },
      ['x86-64-avx512'] = { AVX512 },
      ['x86-64-avx2'] = { AVX2 },
      arm64 = { 'arm-64-linux' },
      [AVX2] = { AVX2 },
      ['x86-64-avx512,x86-64-avx2'] = { AVX512, AVX2 },
      ['x86-64-avx2,' .. SSE41 .. ',x86-64-avx2'] = { AVX2, SSE41 },
    }
    for name, tiers in pairs(cases) do
      local T = targets.resolve(name)
      assert.are.same(tiers, T.tiers, name)
      assert.are.equal(table.concat(tiers, ','), T.string, name)
      assert.are.equal(T.string, targets.resolve(T.string).string, name) -- a resolved string resolves to itself
    end
    local x = targets.resolve('x86-64')
    assert.are.equal('x86', x.arch)
    assert.are.same({ 16, 32 }, { x.lanes, x.registers }) -- the primary tier answers
    assert.are.equal(AVX512 .. '-no_runtime-user_context,' .. AVX2 .. '-no_runtime-user_context,' .. SSE41 ..
      '-no_runtime-user_context', x:kernel_target())
    assert.are.equal(SSE41 .. '-user_context', x:runtime_target())
    assert.are.same({ 8, 16 }, { targets.resolve('x86-64-avx2').lanes, targets.resolve('x86-64-avx2').registers })
    assert.are.same({ 4, 16 }, { targets.resolve(SSE41).lanes, targets.resolve(SSE41).registers })
    local a = targets.resolve('arm64')
    assert.are.same({ 'arm', 4, 32 }, { a.arch, a.lanes, a.registers })
    assert.are.equal('aarch64-linux-gnu-gcc', a.cc)
    assert.are.same({ 'qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu' }, a.run)
    assert.are.equal('Haswell', targets.families.x86.qemu_cpu(AVX2))
    assert.are.equal('Nehalem', targets.families.x86.qemu_cpu(SSE41))
  end)

  it('groups a comma list by architecture; one command builds for one', function()
    local list = targets.parse('x86-64,arm64')
    assert.are.equal(2, #list)
    assert.are.same({ AVX512, AVX2, SSE41 }, list[1].tiers)
    assert.are.same({ 'arm-64-linux' }, list[2].tiers)
    local ok, err = pcall(targets.resolve, 'x86-64,arm64')
    assert.is_false(ok)
    assert.are.equal('--target "x86-64,arm64": names 2 architectures (x86-64-linux, arm-64-linux); this command builds for one', err)
  end)

  it('refuses bad text with one line naming it, before running anything', function()
    local cases = {
      { '', 'empty target' },
      { 'pentium', '"pentium" is not a Halide target: expected host, x86-64' },
      { 'x86-64-linux-avx2;touch PWNED', 'character ";" is not allowed' },
      { 'x86-64-linux avx2', 'character " " is not allowed' },
      { 'arm64,$(id)', 'character "$" is not allowed' },
      { 'x86-64-linux\n', 'byte 10 is not allowed' },
      { 'riscv-64-linux', 'unknown architecture "riscv"' },
      { 'x86-48-linux', 'bits "48", not 32 or 64' },
      { 'x86-64-beos', 'unknown operating system "beos"' },
      { 'x86-64-linux--avx2', 'an empty feature' },
      { 'x86-64,,arm64', '"" is not a Halide target' },
    }
    for _, c in ipairs(cases) do
      for _, fn in ipairs({ targets.check, targets.parse, targets.resolve }) do
        local ok, err = pcall(fn, c[1])
        assert.is_false(ok, c[1])
        assert.is_string(err)
        assert.is_truthy(err:find('^%-%-target "'), err)
        assert.is_truthy(err:find(c[2], 1, true), err)
        assert.is_nil(err:find('\n'), err)
      end
    end
    assert.are.equal('x86-64,arm64', targets.check('x86-64,arm64'))
  end)

  it('every family file provides every field, with values the consumers can use', function()
    for name, f in pairs(targets.families) do
      for field, kind in pairs(targets.FIELDS) do
        assert.are.equal(kind, type(f[field]), name .. '.lua: ' .. field)
      end
      assert.is_truthy(next(f.names), name)
      for tname, tiers in pairs(f.names) do
        local T = targets.resolve(tname)
        assert.are.equal(f, T.family, tname)
        for _, tier in ipairs(tiers) do
          assert.is_truthy(tier:match('^' .. f.arch .. '%-' .. f.bits .. '%-' .. f.os), tier)
          local lanes, regs = f.lanes(tier), f.registers(tier)
          assert.is_true(lanes >= 1 and regs >= 8, tier)
          assert.are.equal(0, f.weight_block % lanes, tier) -- a weight block is whole vectors
          assert.is_table(f.peak_flags(tier))
          local w = f.winograd(tier)
          assert.is_true(w.peak > 0 and w.dram > 0, tier)
          for _, m in ipairs({ 'direct', 2, 4, 6 }) do assert.is_true(w.eff[m] > 0 and w.eff[m] <= 1, tier) end
          local q = f.qemu_cpu(tier)
          assert.is_true(q == nil or type(q) == 'string')
        end
      end
      for _, k in ipairs({ 'l1', 'l2', 'l3_share' }) do assert.is_true(f.cache[k] > 0, name .. ' cache ' .. k) end
      local k = f.knobs
      assert.are.same({ 'number', 'number', 'table', 'table', 'number' }, { type(k.conv2d.tile_co), type(k.conv2d.tile_x),
        type(k.conv2d.ci_block), type(k.conv2d.prefetch), type(k.conv2d.prefetch_bytes) }, name)
      assert.are.same({ 'table', 'table' }, { type(k.linear.tile_co), type(k.linear.tile_r) }, name)
      assert.are.same({ 'table', 'number', 'table' }, { type(k.linear_tokens.tile_co), type(k.linear_tokens.tile_r),
        type(k.linear_tokens.kb) }, name)
      assert.is_truthy(({ clflush = true, dc_civac = true })[f.flush], name .. ': flush ' .. f.flush)
      assert.is_truthy(#f.run >= 1, name)
    end
  end)

  it('GPU targets: a GPU joins its architecture, beside CPU tiers or alone, and resolves to itself', function()
    local cases = { -- text: CPU tiers, GPU tier
      opencl = { {}, SSE41 .. '-opencl' },
      cuda = { {}, SSE41 .. '-cuda-cuda_capability_70' },
      cuda_capability_86 = { {}, SSE41 .. '-cuda-cuda_capability_86' },
      ['x86-64,cuda'] = { { AVX512, AVX2, SSE41 }, SSE41 .. '-cuda-cuda_capability_70' },
      ['x86-64-avx2,opencl'] = { { AVX2 }, AVX2 .. '-opencl' },
      ['x86-64-avx2-cuda_capability_80'] = { {}, AVX2 .. '-cuda-cuda_capability_80' },
      ['arm64-opencl'] = { {}, 'arm-64-linux-opencl' },
      ['arm64,arm64-cuda'] = { { 'arm-64-linux' }, 'arm-64-linux-cuda-cuda_capability_70' },
      ['x86-64-linux-opencl'] = { {}, 'x86-64-linux-opencl' },
    }
    for text, want in pairs(cases) do
      local T = targets.resolve(text)
      assert.are.equal(#want[1] > 0, T.cpu, text)
      if T.cpu then assert.are.same(want[1], T.tiers, text) end
      assert.are.equal(want[2], T.gpu.tier, text)
      assert.are.equal(want[2] .. '-no_runtime-user_context', T:gpu_kernel_target(), text)
      local runtime_base = T.cpu and want[1][#want[1]] or T.tiers[1]
      assert.are.equal(runtime_base .. '-' .. T.gpu.features .. '-user_context', T:runtime_target(), text)
      local again = targets.resolve(T.string)
      assert.are.same({ T.string, T.cpu, T.gpu.tier }, { again.string, again.cpu, again.gpu.tier }, text)
    end
    assert.are.equal('cuda', targets.resolve('x86-64,cuda').gpu.api)
    assert.is_nil(targets.resolve('x86-64').gpu)
    local refused = {
      { 'cuda_capability_89', 'Halide 14 knows CUDA capabilities 30, 32, 35, 50, 61, 70, 75, 80, 86' },
      { 'x86-64-linux-cuda-opencl', 'one GPU API per target' },
      { 'opencl,cuda', 'two GPUs for x86-64-linux' },
      { 'x86-64-linux-cuda_capability_80', 'cuda_capability_80 without cuda' },
      { 'pentium-opencl', '"pentium-opencl" is not a Halide target' },
    }
    for _, c in ipairs(refused) do
      local ok, err = pcall(targets.parse, c[1])
      assert.is_false(ok, c[1])
      assert.is_truthy(err:find(c[2], 1, true), err)
      assert.is_nil(err:find('\n'), err)
    end
    for name, f in pairs(targets.families) do
      local tiers = {}
      for _, ts in pairs(f.names) do for _, t in ipairs(ts) do tiers[t] = true end end
      assert.is_true(tiers[f.baseline], name .. ': baseline ' .. f.baseline .. ' is none of its tiers')
    end
  end)

  it('a GPU target lowers every conv direct, saying why, and refuses a batch', function()
    local pipeline, lower = require 'pipeline', require 'lower'
    local g = pipeline.deploy_graph(os.getenv('FOLDC_ROOT') .. '/tests/fixtures/fixtures.lua:resnet18_w8', 'random')
    local program = lower.lower(g, { target = targets.resolve('host,opencl').string })
    local convs = 0
    for _, s in ipairs(program.steps) do
      if s.op == 'conv2d' then
        convs = convs + 1
        assert.is_nil(s.algorithm:find('winograd'), s.name)
        assert.are.equal('GPU target (opencl): direct (conv2d_winograd has no GPU schedule)', s.algorithm_reason)
      end
    end
    assert.is_true(convs > 10)
    local ok, err = pcall(lower.lower, { images = function() return 4 end }, { target = targets.resolve('cuda').string })
    assert.is_false(ok)
    assert.are.equal('--target cuda: batch 4 is not supported on GPU targets yet (batch 1 only)', err)
  end)

  it('names the CPU from /proc/cpuinfo as its family does (schedule records say where they were tuned)', function()
    local x86, arm = targets.families.x86, targets.families.arm
    assert.are.equal('AMD EPYC 7R13 Processor', x86.cpu_name('processor\t: 0\nvendor_id\t: AuthenticAMD\n'
      .. 'model name\t: AMD EPYC 7R13 Processor  \nflags\t: fpu\n'))
    assert.is_nil(x86.cpu_name('processor\t: 0\n'))
    assert.are.equal('implementer 0x41 part 0xd0c', arm.cpu_name('processor\t: 0\nBogoMIPS\t: 243.75\n'
      .. 'CPU implementer\t: 0x41\nCPU architecture: 8\nCPU part\t: 0xd0c\n'))
    assert.are.equal('Apple M1', arm.cpu_name('processor\t: 0\nmodel name\t: Apple M1\nCPU part\t: 0x022\n'))
    assert.is_string(targets.cpu()) -- this machine's
  end)

  it('the tuner asks the target: its vector width and registers bound the tiles', function()
    local tune = require 'tune'
    local p = { cin = 64, cout = 64, in_w = 14, in_h = 14, out_w = 14, out_h = 14, kw = 3, kh = 3, stride_x = 1,
      stride_y = 1, pad_x = 1, pad_y = 1, dil_x = 1, dil_y = 1, groups = 1 }
    for _, name in ipairs({ 'x86-64-avx512', 'x86-64-avx2', 'arm64' }) do
      local T = targets.resolve(name)
      local stage1 = tune.space('conv2d', p, T.string)
      assert.is_true(#stage1 > 0, name)
      for _, c in ipairs(stage1) do
        assert.is_true(c.tile_co * c.tile_x + c.tile_co + 1 <= T.registers, name)
        assert.is_true(c.tile_co * T.lanes <= 64, name)
      end
    end
  end)

  it('tracing and folding a model load neither the kernel driver nor the schedule database', function()
    local root = os.getenv('FOLDC_ROOT') or '.'
    local code = "package.path = '" .. root .. "/compiler/?.lua;" .. root .. "/compiler/?/init.lua;' .. package.path " ..
      "local s = require('schedules') local reads = 0 local load = s.load " ..
      "s.load = function(...) reads = reads + 1 return load(...) end " ..
      "require('pipeline').deploy_graph('resnet18', 'random') " ..
      "print(package.loaded.kernels and 'kernels' or '-', reads, package.loaded['ops.conv2d'] and 'conv2d' or '-')"
    local out = sys.capture({ 'luajit', '-e', code })
    assert.are.equal('-\t0\tconv2d', (out:gsub('%s+$', '')))
  end)
end)
