-- The backend: deploy graph -> bundle folder (lower, plan memory, compile kernels, emit), and the
-- verbs that build a bundle in a scratch folder to run or time it.
local lower = require 'lower'
local memory_plan = require 'memory_plan'
local kernels = require 'kernels'
local targets = require 'targets'
local emit = require 'emit'
local sys = require 'sys'
local lfs = require 'lfs'
local cli_human = function(n) return require('cli').human(n) end

local backend = {}

local LOCK_WAIT_S = 60

-- The bundle folder a build may write: refuses (`-o "PATH": why`) an empty path, the root, a path
-- ending in . or .., a parent folder that is missing or not writable, and an existing non-folder.
-- Returns the path without trailing slashes (./ before a leading -, so no command reads it as an
-- option) and its parent folder.
function backend.output_dir(path)
  local function refuse(why)
    error('-o "' .. tostring(path):gsub('[^\32-\126]', '?') .. '": ' .. why, 0)
  end
  if type(path) ~= 'string' or path == '' then refuse('empty path; name the bundle folder') end
  local dir = path:gsub('/+$', '')
  if dir == '' then refuse('the root folder cannot be a bundle folder') end
  local last = dir:match('[^/]*$')
  if last == '.' or last == '..' then refuse('names an existing folder (' .. last .. '), not a bundle folder') end
  if dir:sub(1, 1) == '-' then dir = './' .. dir end
  local parent = dir:match('^(.*)/[^/]*$') or '.'
  if parent == '' then parent = '/' end
  local pa = lfs.attributes(parent)
  if not pa then refuse('folder ' .. parent .. ' does not exist') end
  if pa.mode ~= 'directory' then refuse(parent .. ' is not a folder') end
  if not sys.writable(parent) then refuse('folder ' .. parent .. ' is not writable') end
  local a = lfs.attributes(dir)
  if a and a.mode ~= 'directory' then refuse('exists and is not a folder') end
  return dir, parent
end

-- Refuse to replace dir unless it is missing, empty or a bundle of the model `name`.
local function check_replaceable(dir, name)
  if not lfs.attributes(dir) or sys.exists(dir .. '/' .. name .. '.json') then return end
  local ok, iter, state = pcall(lfs.dir, dir)
  local empty = ok
  if ok then
    for f in iter, state do
      if f ~= '.' and f ~= '..' then empty = false end
    end
  end
  if not empty then
    error(dir .. ': exists and is not a bundle of ' .. name .. '; refusing to overwrite', 0)
  end
end

-- Put the finished bundle tmp at dir, under a lock on the parent folder (concurrent builds into
-- dir take turns): the old one is renamed aside, the new one into place, then the old one removed;
-- a half-written bundle is never at dir.
local function replace(dir, parent, tmp, name)
  local old = sys.scratch(dir, 'old')
  local moved_aside = sys.locked(parent, LOCK_WAIT_S, '-o "' .. dir .. '"', function()
    check_replaceable(dir, name)
    local aside = lfs.attributes(dir) ~= nil
    if aside then
      local ok, err = os.rename(dir, old)
      if not ok then error(dir .. ': cannot move the old bundle aside: ' .. tostring(err), 0) end
    end
    local ok, err = os.rename(tmp, dir)
    if not ok then
      if aside then os.rename(old, dir) end
      error(dir .. ': cannot move the new bundle into place: ' .. tostring(err), 0)
    end
    return aside
  end)
  if moved_aside then sys.rm_rf(old) end
end

-- Build a bundle into out_dir (backend.output_dir; an existing bundle there is replaced). Nothing
-- is left behind on failure: everything is written into a scratch sibling (sys.scratch; those of
-- dead builds are swept first) and renamed into place at the end.
-- opts: target (a --target text: one architecture, or several for a multi-architecture bundle),
-- weights (write the weights blob), source (description text for the README), conv_algo (force one
-- convolution algorithm: lower.lower).
-- A multi-architecture bundle is lowered once, for its first architecture (one glue, one weights
-- blob), and has one kernel library per architecture, lib<m>_kernels-<machine>.a (machine: the
-- first word of the family's multiarch triple, as `cc -dumpmachine` and CMAKE_SYSTEM_PROCESSOR say
-- it); its kernels take one C name for every architecture (kernels.compile's names).
function backend.build(graph, out_dir, opts)
  opts = opts or {}
  local dir, parent = backend.output_dir(out_dir)
  sys.sweep(parent, dir:match('[^/]*$'))
  local archs = targets.parse(opts.target)
  local strings = {}
  for i, T in ipairs(archs) do strings[i] = T.string end
  local target = table.concat(strings, ',')
  for _, T in ipairs(archs) do
    if T.gpu and #archs > 1 then
      error('--target "' .. tostring(opts.target) .. '": a GPU bundle is for one architecture (not done yet for several)', 0)
    end
  end
  local program = lower.lower(graph, { target = archs[1].string, conv_algo = opts.conv_algo })
  local name = emit.c_name(program.name)
  check_replaceable(dir, name)
  local arena, bound = memory_plan.plan(program.acts)
  local weights_total = emit.layout_weights(program.weights)
  -- the first architecture last, so that its schedule records stay on the steps for emit
  local libraries = {}
  for i = #archs, 1, -1 do
    local T = archs[i]
    local distinct, runtime = kernels.compile(program, T.string, #archs > 1 and target or nil)
    libraries[i] = { machine = #archs > 1 and T.family.multiarch:match('^[^-]+') or nil,
                     kernels = distinct, runtime = runtime }
  end
  local tmp = sys.scratch(dir)
  sys.rm_rf(tmp)
  local ok, err = pcall(function()
    local made, why = lfs.mkdir(tmp)
    if not made then error('-o "' .. dir .. '": cannot create ' .. tmp .. ': ' .. tostring(why), 0) end
    emit.bundle(program, tmp, {
      target = target, arena = arena, bound = bound, weights_total = weights_total,
      kernels = libraries[1].kernels, runtime = libraries[1].runtime, libraries = libraries,
      source = opts.source or graph.name, with_weights = opts.weights,
    })
    replace(dir, parent, tmp, name)
  end)
  if not ok then
    sys.rm_rf(tmp)
    error(err, 0)
  end
  return { dir = dir, name = name, arena = arena, bound = bound, weights_bytes = weights_total,
           kernels = #libraries[1].kernels, steps = #program.steps, target = target, archs = archs }
end

-- The fold report (passes.run's report): what was folded, blocks by kind, then parameters and
-- MACs before -> after. Printed by build and fold.
function backend.fold_report(graph, report)
  local folds = {}
  for _, k in ipairs({ 'repvgg_folded', 'acb_folded', 'dbb_folded', 'dirac_folded', 'repmlp_folded',
                       'mobileone_folded', 'bn_folded', 'bn_as_affine', 'affine_into_conv', 'fused_projection', 'fused_add', 'fused_act' }) do
    if report[k] and report[k] > 0 then folds[#folds + 1] = k:gsub('_', ' ') .. ' ' .. report[k] end
  end
  return {
    string.format('%s: %s', graph.name, #folds > 0 and table.concat(folds, ', ') or 'nothing to fold'),
    string.format('  params %s -> %s, MACs %s -> %s', cli_human(report.params_before),
      cli_human(report.params_after), cli_human(report.macs_before), cli_human(report.macs_after)),
  }
end

function backend.summary(graph, report, info)
  local lines = backend.fold_report(graph, report)
  lines[#lines + 1] = string.format('  %d layers, %d distinct kernels; arena %.2f MB (lower bound %.2f MB); weights %.2f MB',
    info.steps, info.kernels, info.arena / 2^20, info.bound / 2^20, info.weights_bytes / 2^20)
  lines[#lines + 1] = string.format('  wrote %s (target %s)', info.dir, info.target)
  -- per architecture, the schedule records used and the CPU they were tuned on
  for _, T in ipairs(targets.parse(info.target)) do lines[#lines + 1] = '  ' .. require('schedules').report(T.string) end
  return table.concat(lines, '\n')
end

-- A program on PATH (or a path to one), or nil.
local function on_path(prog)
  if prog:find('/') then return lfs.attributes(prog, 'mode') == 'file' and prog or nil end
  for d in ((os.getenv('PATH') or '') .. ':'):gmatch('([^:]*):') do
    if d ~= '' and lfs.attributes(d .. '/' .. prog, 'mode') == 'file' then return d .. '/' .. prog end
  end
end

-- How this machine runs a bundle for a --target text (targets.parse): natively when one of its
-- architectures has a tier this CPU runs (Target:native_tier), else under the emulator of the first
-- architecture whose emulator (family.run, with qemu_cpu's -cpu for a tier of this architecture that
-- needs features this CPU lacks) and cross compiler (family.cc, for another architecture) are
-- installed. Returns { T, cc (nil: the system's), prefix (argv before the program), under (the
-- emulator's words, nil when native) }; raises one line naming what is missing. With native, an
-- emulator is refused (timings under one mean nothing).
function backend.runner(text, native)
  local archs = targets.parse(text)
  for _, T in ipairs(archs) do
    if T:native_tier() then return { T = T, prefix = {} } end
  end
  local host = targets.parse('host')[1]
  local function refuse(why)
    error('--target "' .. tostring(text) .. '": this machine (' .. host.key .. ') runs none of it natively; ' .. why, 0)
  end
  if native then refuse('timings under an emulator mean nothing, so build it and time it on such a CPU') end
  local missing = {}
  for _, T in ipairs(archs) do
    local same = T.key == host.key
    local cpu = same and T.family.qemu_cpu(T.tiers[1]) or nil
    local cc = not same and T.cc or nil
    if same and not cpu then
      missing[#missing + 1] = 'no emulated CPU has the features of ' .. T.string
    elseif not on_path(T.run[1]) then
      missing[#missing + 1] = T.run[1] .. ' is not installed (Debian: qemu-user-static)'
    elseif cc and not on_path(cc) then
      missing[#missing + 1] = cc .. ' is not installed (Debian: ' .. cc:gsub('^(.*)%-gcc$', 'gcc-%1') .. ')'
    else
      local prefix = { T.run[1] }
      if cpu then prefix[2], prefix[3] = '-cpu', cpu end
      for i = 2, #T.run do prefix[#prefix + 1] = T.run[i] end
      local label = T.string
      for n, tiers in pairs(T.family.names) do
        if table.concat(tiers, ',') == T.string then label = n end
      end
      return { T = T, cc = cc, prefix = prefix, label = label,
               under = table.concat(prefix, ' ', 1, cpu and 3 or 1) }
    end
  end
  refuse(table.concat(missing, '; '))
end

-- Build with weights into a scratch folder in the kernel cache (sys.scratch: those of dead runs are
-- swept first) and compile it with the runner's C compiler (backend.runner).
local function scratch_bundle(graph, opts, runner)
  local base = kernels.cache_dir() .. '/scratch'
  sys.mkdir_p(base)
  sys.sweep(base)
  local dir = sys.scratch(base .. '/bundle')
  sys.rm_rf(dir)
  local ok, info = pcall(function()
    sys.mkdir_p(dir)
    local info = backend.build(graph, dir .. '/bundle', { target = opts.target, weights = true })
    local make = { 'make', '-s', '-C', info.dir }
    if runner.cc then make[#make + 1] = 'CC=' .. runner.cc end
    sys.run_quiet(make, 'compiling the bundle' .. (runner.cc and ' with ' .. runner.cc or ''))
    return info
  end)
  if not ok then
    sys.rm_rf(dir)
    error(info, 0)
  end
  return dir, info
end

-- Run the compiled model once on input (a tensor), natively or under an emulator (opts.runner, or
-- backend.runner(opts.target), said on stderr); returns the output tensor.
function backend.run_once(graph, input, opts)
  opts = opts or {}
  local npy = require 'weights.npy'
  local runner = opts.runner or backend.runner(opts.target)
  local dir, info = scratch_bundle(graph, opts, runner)
  local ok, out = pcall(function()
    npy.write(dir .. '/in.npy', input)
    local argv = {}
    for i, w in ipairs(runner.prefix) do argv[i] = w end
    for _, w in ipairs({ info.dir .. '/' .. info.name .. '_main', '--weights', info.dir .. '/' .. info.name .. '.weights',
      '--input', dir .. '/in.npy', '--output', dir .. '/out.npy' }) do argv[#argv + 1] = w end
    if runner.under then
      io.stderr:write('foldc: running the ', runner.label, ' bundle under ', runner.under, '\n')
    end
    sys.run_quiet(argv, 'running ' .. info.name .. (runner.under and ' under ' .. runner.under or ''))
    return npy.read(dir .. '/out.npy')
  end)
  sys.rm_rf(dir)
  if not ok then error(out, 0) end
  return out
end

-- A peak program in the kernel cache's peak folder (exe: named by what it is built from), built by
-- the command argv_for(scratch path) when missing and renamed into place.
local function cached_program(exe, argv_for, what)
  if sys.exists(exe) then return end
  local dir = exe:match('^(.*)/')
  sys.mkdir_p(dir)
  sys.sweep(dir)
  local tmp = sys.scratch(exe)
  sys.run_quiet(argv_for(tmp), 'compiling ' .. what)
  assert(os.rename(tmp, exe))
end

-- FMA peak of one core in GFLOP/s, for "% of peak": measured on this machine by compiler/peak.c
-- (independent vector FMA chains), built with clang for the widest tier of the target this machine
-- runs (targets/<family>.lua peak_flags), cached per flags in the kernel cache; FOLDC_PEAK_GFLOPS
-- overrides it. 0 (no % column) when this machine runs no tier of the target.
function backend.peak_gflops(target)
  local env = tonumber(os.getenv('FOLDC_PEAK_GFLOPS') or '')
  if env then return env end
  local T = require('targets').resolve(target)
  local tier = T:native_tier()
  if not tier then return 0 end
  local flags = T.family.peak_flags(tier)
  flags[#flags + 1] = '-ffp-contract=fast'
  local root = os.getenv('FOLDC_ROOT') or '.'
  local hash = require 'hash'
  -- cached per flags and per source: a changed peak.c is built anew
  local exe = require('kernels').cache_dir() .. '/peak/peak' .. table.concat(flags):gsub('[^%w]+', '-') .. '-'
    .. hash.hex(hash.string(sys.read_file(root .. '/compiler/peak.c'))):sub(1, 8)
  cached_program(exe, function(tmp)
    local argv = { 'clang', '-O2', '-std=c99' }
    for _, f in ipairs(flags) do argv[#argv + 1] = f end
    for _, a in ipairs({ root .. '/compiler/peak.c', '-o', tmp }) do argv[#argv + 1] = a end
    return argv
  end, 'compiler/peak.c')
  local out = sys.capture({ exe })
  local gflops = tonumber(out and out:match('^%s*([%d.]+)'))
  if not gflops then error('compiler/peak.c: no measurement (got ' .. tostring(out) .. ')', 0) end
  return gflops
end

-- The GPU's FMA peak in GFLOP/s, for "% of peak" on a GPU context: measured on the GPU now by
-- compiler/gpu_peak.c (the gpu_peak kernel, compiler/halide/gpu_peak.cpp, built for the target's
-- GPU), the program cached per kernel in the kernel cache; FOLDC_PEAK_GFLOPS overrides it. Raises
-- with the program's one line when there is no driver or device.
function backend.gpu_peak_gflops(target)
  local env = tonumber(os.getenv('FOLDC_PEAK_GFLOPS') or '')
  if env then return env end
  local T = require('targets').resolve(target)
  local kernels = require 'kernels'
  local hash = require 'hash'
  local api = require('targets.gpu').apis[T.gpu.api]
  local root = os.getenv('FOLDC_ROOT') or '.'
  local steps = 4096
  local k = kernels.describe('gpu_peak', { 'steps=' .. steps }, target, 'gpu_peak', T:gpu_kernel_target())
  local runtime = kernels.build({ k }, target, { quiet = true })
  local exe = kernels.cache_dir() .. '/peak/gpu_peak-' .. hash.hex(hash.string(k.dir .. '|' .. runtime.dir .. '|'
    .. sys.read_file(root .. '/compiler/gpu_peak.c') .. '|' .. sys.read_file(root .. '/runtime/foldc_gpu_driver.h'))):sub(1, 16)
  cached_program(exe, function(tmp)
    local libs = {}
    for i, l in ipairs(api.libraries) do libs[i] = '"' .. l .. '"' end
    return { os.getenv('CC') or 'cc', '-O2', '-std=c99', '-I/usr/include/halide14', '-DPEAK_FN=' .. k.fn,
      '-DPEAK_STEPS=' .. steps, '-DGET_SYMBOL=' .. api.get_symbol, '-DLIBRARIES=' .. table.concat(libs, ', '),
      root .. '/compiler/gpu_peak.c', k.object, runtime.object, '-lpthread', '-ldl', '-lm', '-o', tmp }
  end, 'compiler/gpu_peak.c')
  local ok, out = pcall(sys.capture, { exe })
  local gflops = ok and tonumber(out and out:match('^%s*([%d.]+)'))
  if not gflops then error('measuring the GPU\'s peak: ' .. tostring(out):gsub('%s+$', ''), 0) end
  return gflops
end

-- Time the compiled model: min and median of `runs` runs, and a per-layer profile. On a target with
-- a GPU the context is on the GPU (the bundle's default device) and "% of peak" is of the GPU's.
function backend.bench(graph, opts)
  local dir, info = scratch_bundle(graph, opts, backend.runner(opts.target, true))
  local threads = opts.threads or 1
  local gpu = require('targets').resolve(info.target).gpu
  local peak = gpu and backend.gpu_peak_gflops(info.target) or backend.peak_gflops(info.target) * threads
  if peak > 0 and not opts.json then
    local source = os.getenv('FOLDC_PEAK_GFLOPS') and 'FOLDC_PEAK_GFLOPS'
      or gpu and 'the GPU\'s FMA peak measured now, compiler/gpu_peak.c' or 'FMA peak measured now, compiler/peak.c'
    if gpu then
      print(string.format('%% peak: of %.1f GFLOP/s (%s)', peak, source))
    else
      print(string.format('%% peak: of %.1f GFLOP/s per core x %d thread(s) (%s)', peak / threads, threads, source))
    end
    io.stdout:flush()
  end
  local argv = { info.dir .. '/' .. info.name .. '_main', '--weights', info.dir .. '/' .. info.name .. '.weights',
    '--runs', tostring(opts.runs or 20), '--threads', tostring(threads), '--profile',
    '--peak', tostring(peak) }
  if opts.json then argv[#argv + 1] = '--json' end
  local ok = sys.stream(argv)
  sys.rm_rf(dir)
  if not ok then error('benchmark of ' .. info.name .. ' failed', 0) end
end

local ORT_VERSION = '1.30.0' -- the newest onnxruntime-node, the bar foldc is measured against

-- Side by side with ONNX Runtime and PyTorch (compiler/compare/): the same PyTorch model and random
-- weights (tests/fixtures/torch_reference.py) exported to ONNX, foldc built from its state_dict,
-- runs interleaved round by round. opts: target, threads, rounds, runs, seed, skip, json, batch
-- (images a run: the export's input and ONNX model hold that many, foldc is built for it).
function backend.compare(model, opts)
  local pipeline = require 'pipeline'
  local runner = backend.runner(opts.target, true)
  local root = os.getenv('FOLDC_ROOT') or '.'
  local py = os.getenv('FOLDC_PYTHON') or '/usr/bin/python3'
  local base = require('kernels').cache_dir()
  local name = model
  local batch = opts.batch or 1
  local dir = string.format('%s/compare/%s-seed%d%s', base, name, opts.seed or 0, batch > 1 and '-batch' .. batch or '')
  if not sys.exists(dir .. '/' .. name .. '.pt') then
    io.stderr:write('foldc: exporting ', name, ' from PyTorch (ONNX, TorchScript, safetensors) into ', dir, '\n')
    local tmp = dir .. '.tmp.' .. sys.pid()
    sys.rm_rf(tmp)
    sys.run_quiet({ py, root .. '/compiler/compare/export.py', name, tmp, '--seed', tostring(opts.seed or 0),
      '--batch', tostring(batch) }, 'exporting ' .. name .. ' from PyTorch')
    sys.rm_rf(dir)
    assert(os.rename(tmp, dir))
  end
  -- the ONNX Runtime the comparison is made against, installed once per version
  local ort_dir = base .. '/ort-' .. ORT_VERSION
  local ort = os.getenv('FOLDC_ORT_MODULES') or (ort_dir .. '/node_modules')
  if not sys.exists(ort .. '/onnxruntime-node') and not (opts.skip or ''):match('ort') then
    io.stderr:write('foldc: installing onnxruntime-node ', ORT_VERSION, ' (npm, --ignore-scripts) into ', ort_dir, '\n')
    sys.mkdir_p(ort_dir)
    sys.run_quiet({ 'npm', 'install', '--ignore-scripts', '--no-audit', '--no-fund', '--prefix', ort_dir,
      'onnxruntime-node@' .. ORT_VERSION }, 'npm install onnxruntime-node')
  end
  local graph = pipeline.deploy_graph(name, dir .. '/' .. name .. '.safetensors',
    { input = batch > 1 and require('weights.npy').read(dir .. '/' .. name .. '.input.npy').shape or nil,
      input_what = name .. '.input.npy' })
  local bdir, info = scratch_bundle(graph, opts, runner)
  local peak = backend.peak_gflops(info.target) * (opts.threads or 1)
  local argv = { py, root .. '/compiler/compare/compare.py', '--model', name, '--dir', dir,
    '--gflop', string.format('%.6f', 2 * graph:macs() / 1e9), '--peak', string.format('%.3f', peak),
    '--foldc-main', info.dir .. '/' .. info.name .. '_main', '--foldc-weights', info.dir .. '/' .. info.name .. '.weights',
    '--threads', tostring(opts.threads or 1), '--rounds', tostring(opts.rounds or 8), '--runs', tostring(opts.runs or 5),
    '--ort-modules', ort }
  if opts.skip and opts.skip ~= '' then argv[#argv + 1] = '--skip=' .. opts.skip end
  if opts.json then argv[#argv + 1] = '--json' end
  local ok = sys.stream(argv)
  sys.rm_rf(bdir)
  if not ok then error('comparison of ' .. name .. ' failed', 0) end
end

return backend
