-- Schedule records per CPU (compiler/schedules.lua): a build reads the nearest records (same
-- architecture and vector width, the most shared features, then this CPU's file, else the closest
-- peak) and says which in its report; kernels.compile sets step.record from them; foldc tune reads
-- and writes the target's own file for this CPU, with its "# cpu:" line; a malformed "# cpu:" line
-- names file and line; foldc tune refuses a target this machine cannot run natively, in one line.
-- This machine's CPU is stubbed (schedules.machine), the folder is a scratch one.
local schedules = require 'schedules'
local kernels = require 'kernels'
local targets = require 'targets'
local sys = require 'sys'

local AVX512 = 'x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41'
local RICH = 'x86-64-linux-avx-avx2-avx512-avx512_cannonlake-avx512_sapphirerapids-avx512_skylake-f16c-fma-sse41'
local AVX2 = 'x86-64-linux-avx-avx2-f16c-fma-sse41'
local SIG = 'conv2d cin=8 cout=16'

describe('schedule records per CPU', function()
  local dir, root, machine, here
  setup(function()
    dir = sys.tmpdir('foldc-schedules-spec')
    root, machine = schedules.root, schedules.machine
    schedules.root = function() return dir end
    schedules.machine = function() return here end
  end)
  teardown(function()
    schedules.root, schedules.machine = root, machine
    sys.rm_rf(dir)
  end)
  before_each(function()
    sys.rm_rf(dir)
    sys.mkdir_p(dir)
  end)

  -- a records file tuned on cpu at peak, whose one record sets tile_co
  local function records(folder, file, cpu, peak, tile_co)
    sys.mkdir_p(dir .. '/' .. folder)
    sys.write_file(dir .. '/' .. folder .. '/' .. file, string.format(
      '# foldc tune results\n# cpu: %s; peak %.1f GFLOP/s per core\n%s\ttile_co=%d\t# test\n', cpu, peak, SIG, tile_co))
  end
  local function chosen(target)
    local near = schedules.nearest(target)
    return near and { near.path:sub(#dir + 2), near.exact }
  end

  it('a build reads this CPU\'s file, else the closest peak, and says so', function()
    records(AVX512, 'halide14.txt', 'Fast CPU', 278, 4)
    records(AVX512, 'halide14-slow-cpu-125gflops.txt', 'Slow CPU', 125, 2)
    here = { cpu = 'Slow CPU', peak = 130 }
    assert.are.same({ AVX512 .. '/halide14-slow-cpu-125gflops.txt', true }, chosen(AVX512))
    assert.are.equal('2', schedules.load(AVX512)[SIG].params.tile_co)
    assert.are.equal('schedules: ' .. dir .. '/' .. AVX512 .. '/halide14-slow-cpu-125gflops.txt (tuned on this CPU: Slow CPU, peak 125.0 GFLOP/s)',
      schedules.report(AVX512))
    here = { cpu = 'Other CPU', peak = 240 }
    assert.are.same({ AVX512 .. '/halide14.txt', false }, chosen(AVX512))
    assert.are.equal('4', schedules.load(AVX512)[SIG].params.tile_co)
    assert.are.equal('schedules: nearest records ' .. dir .. '/' .. AVX512 .. '/halide14.txt (tuned on another CPU: Fast CPU, '
      .. 'peak 278.0 GFLOP/s; this CPU: Other CPU, 240.0 GFLOP/s)', schedules.report(AVX512))
    -- the same model name at 2.2x the peak is another CPU (the two halves of 512-bit FMAs)
    here = { cpu = 'Fast CPU', peak = 120 }
    assert.are.same({ AVX512 .. '/halide14-slow-cpu-125gflops.txt', false }, chosen(AVX512))
    -- a machine that does not run the target: the first file by name, never exact
    here = nil
    assert.are.same({ AVX512 .. '/halide14-slow-cpu-125gflops.txt', false }, chosen(AVX512))
    assert.truthy(schedules.report(AVX512):find('this machine does not run ' .. AVX512 .. ' natively', 1, true))
  end)

  it('a target without records reads the nearest folder of its architecture and vector width', function()
    here = { cpu = 'Fast CPU', peak = 270 }
    records(RICH, 'halide14.txt', 'Fast CPU', 278, 4)
    records(AVX2, 'halide14.txt', 'Fast CPU', 278, 3)
    -- x86-64's primary (AVX-512) tier lacks two of RICH's features: still the nearest
    assert.are.same({ RICH .. '/halide14.txt', true }, chosen('x86-64'))
    assert.are.equal('schedules: nearest records ' .. dir .. '/' .. RICH .. '/halide14.txt (tuned on this CPU: Fast CPU, peak 278.0 GFLOP/s)',
      schedules.report('x86-64'))
    -- the folder with the most shared features and fewest extra ones wins
    records(AVX512, 'halide14.txt', 'Fast CPU', 278, 5)
    assert.are.same({ AVX512 .. '/halide14.txt', true }, chosen('x86-64'))
    assert.are.same({ AVX2 .. '/halide14.txt', true }, chosen('x86-64-avx2'))
    -- another vector width or architecture: none
    assert.is_nil(chosen('x86-64-linux-sse41'))
    assert.is_nil(chosen('arm64'))
    assert.are.equal('schedules: none for arm-64-linux: generator defaults and the cost model', schedules.report('arm64'))
    assert.are.same({}, schedules.load('arm64'))
  end)

  it('kernels.compile sets step.record from the nearest records', function()
    here = { cpu = 'Other CPU', peak = 270 }
    local gparams = { cin = 8, cout = 16 }
    records(RICH, 'halide14.txt', 'Fast CPU', 278, 4)
    local build = kernels.build
    kernels.build = function() return {} end -- compile nothing
    local program = { steps = { { kind = 'kernel', generator = 'conv2d', gparams = gparams },
                                { kind = 'kernel', generator = 'conv2d', gparams = { cin = 8, cout = 32 } } } }
    local ok, err = pcall(kernels.compile, program, targets.resolve('x86-64').string)
    kernels.build = build
    assert(ok, err)
    assert.are.same({ file = dir .. '/' .. RICH .. '/halide14.txt', signature = SIG, cpu = 'Fast CPU', exact = false },
      program.steps[1].record)
    assert.are.equal('tile_co=4', program.steps[1].schedule)
    assert.is_nil(program.steps[2].record) -- no record: the generator's defaults
  end)

  it('foldc tune writes its own file for this CPU, with the CPU line', function()
    here = { cpu = 'Fast CPU', peak = 270 }
    records(AVX512, 'halide14.txt', 'Fast CPU', 278, 4)
    assert.are.equal(dir .. '/' .. AVX512 .. '/halide14.txt', schedules.own_path(AVX512))
    here = { cpu = 'Slow CPU (R) 2.0GHz', peak = 124.6 }
    local own = dir .. '/' .. AVX512 .. '/halide14-slow-cpu-r-2-0ghz-125gflops.txt'
    assert.are.equal(own, schedules.own_path(AVX512))
    assert.are.same({}, schedules.load_own(AVX512)) -- the other CPU's records are not this one's
    schedules.save(AVX512, { [SIG] = { params = { tile_co = 1 }, comment = '# t' } })
    assert.are.equal('# cpu: Slow CPU (R) 2.0GHz; peak 124.6 GFLOP/s per core', sys.read_file(own):match('\n([^\n]*)'))
    assert.are.equal('1', schedules.load_own(AVX512)[SIG].params.tile_co)
    assert.are.same({ AVX512 .. '/halide14-slow-cpu-r-2-0ghz-125gflops.txt', true }, chosen(AVX512))
    -- a new target's first file is halide14.txt
    assert.are.equal(dir .. '/' .. AVX2 .. '/halide14.txt', schedules.own_path(AVX2))
  end)

  it('a malformed CPU line names the file and line', function()
    here = { cpu = 'Fast CPU', peak = 270 }
    sys.mkdir_p(dir .. '/' .. AVX512)
    local path = dir .. '/' .. AVX512 .. '/halide14.txt'
    sys.write_file(path, '# title\n# cpu: Fast CPU; peak fast GFLOP/s per core\n')
    local ok, err = pcall(schedules.load, AVX512)
    assert.is_false(ok)
    assert.are.equal(path .. ':2: expected "# cpu: <model name>; peak <number> GFLOP/s per core", got "# cpu: Fast CPU; peak fast GFLOP/s per core"', err)
  end)
end)

describe('foldc tune --target', function()
  it('refuses a target this machine cannot run natively, in one line, before loading the model', function()
    local root = os.getenv('FOLDC_ROOT') or '.'
    local t0 = os.time()
    local p = io.popen(sys.q(root .. '/bin/foldc') .. ' tune resnet50 --target arm64 2>&1; echo "rc=$?"')
    local out = p:read('*a')
    p:close()
    assert.truthy(os.time() - t0 < 10)
    local host = targets.host()
    assert.are.equal('foldc: tune: --target "arm64": this machine (' .. host .. ') cannot run it natively, and timings '
      .. 'under an emulator mean nothing; tune on such a CPU\nrc=1\n', out)
  end)
end)
