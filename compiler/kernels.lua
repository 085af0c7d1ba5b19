-- Kernel compilation: each distinct (generator, shape parameters, schedule, target) becomes one
-- Halide AOT object, compiled by the foldc_gen generator binary and cached under its content hash
-- (which covers the generator sources and Halide's version too), so rebuilding a model is seconds.
-- Missing kernels are compiled in parallel through a generated Makefile, kept in the cache and run
-- tied to foldc (sys.run_tied: nothing keeps running or stays behind when foldc dies); every value
-- in it is a checked target or a quoted word. A target of several tiers (targets/: x86-64) gives
-- one object per kernel that picks its tier on the CPU at the first call; the runtime is built once,
-- for the baseline tier. A target with a GPU (targets/gpu.lua) gives each kernel a second object,
-- compiled for the GPU's tier with the generator's defaults (the schedule records are CPU tunings):
-- step.fn_gpu beside step.fn (none without CPU tiers); the runtime then holds the GPU API's device
-- runtime. Whether a GPU object puts work on the GPU (k.on_gpu) is read from the object: it calls
-- the API's run entry point only when the generator has a GPU schedule.
local lfs = require 'lfs'
local hash = require 'hash'
local sys = require 'sys'
local schedules = require 'schedules'
local targets = require 'targets'

local kernels = {}

local root = os.getenv('FOLDC_ROOT') or '.'
local HALIDE_VERSION = '14'

local generator_digest
local function generator_sources_digest()
  if generator_digest then return generator_digest end
  local dir = root .. '/compiler/halide'
  local names = {}
  for f in lfs.dir(dir) do
    if f:match('%.cpp$') or f:match('%.h$') or f == 'CMakeLists.txt' then names[#names + 1] = f end
  end
  table.sort(names)
  local parts = { 'halide' .. HALIDE_VERSION }
  for _, f in ipairs(names) do parts[#parts + 1] = f .. '\0' .. sys.read_file(dir .. '/' .. f) end
  generator_digest = hash.hex(hash.string(table.concat(parts, '\0')))
  return generator_digest
end

function kernels.cache_dir()
  local base = os.getenv('FOLDC_CACHE')
  if not base then
    base = (os.getenv('XDG_CACHE_HOME') or ((os.getenv('HOME') or '/tmp') .. '/.cache')) .. '/foldc'
  end
  return base
end

-- The generator binary: FOLDC_GEN if set, else built with CMake on first use (FOLDC_BUILD
-- overrides the build folder).
function kernels.generator()
  local given = os.getenv('FOLDC_GEN')
  if given and given ~= '' then return given end
  local build = os.getenv('FOLDC_BUILD') or (root .. '/build')
  local bin = build .. '/compiler/halide/foldc_gen'
  if not lfs.attributes(build .. '/CMakeCache.txt') then
    sys.run_quiet({ 'cmake', '-S', root, '-B', build, '-DCMAKE_BUILD_TYPE=Release' }, 'configuring the generator build')
  end
  sys.run_quiet({ 'cmake', '--build', build, '--target', 'foldc_gen', '-j', tostring(sys.nproc()) }, 'building foldc_gen')
  return bin
end

-- The build's target string for a --target text (targets.resolve: checked before anything runs).
function kernels.resolve_target(target)
  return targets.resolve(target).string
end

-- Attach .fn (C function name) and .object/.header to every kernel step, and .schedule/.record
-- (the schedule record applied, from schedules.load: the nearest records); with a GPU also .fn_gpu
-- (and .on_gpu: its generator has a GPU schedule); compile what is missing.
-- Returns the list of distinct kernels and the runtime object path. names (a multi-architecture
-- bundle's whole target string) gives a kernel one C name on every architecture: from names and
-- the lowering's parameters, since schedule records differ between architectures.
function kernels.compile(program, target, names)
  local distinct, by_fn = {}, {}
  local T = targets.resolve(target)
  local db, near = schedules.load(target), schedules.nearest(target)
  local function add(k)
    if not by_fn[k.fn] then
      by_fn[k.fn] = k
      distinct[#distinct + 1] = k
    end
    return by_fn[k.fn]
  end
  for _, step in ipairs(program.steps) do
    if step.kind == 'kernel' then
      -- a schedule record for this target (schedules/, written by foldc tune) adds its parameters
      local gparams, sig = step.gparams, schedules.signature(step.generator, schedules.param_list(step.gparams))
      local rec = db[sig]
      if not rec and step.gparams_one then
        -- a batched kernel (lower.batch_step) without its own record takes its batch-1 kernel's
        sig = schedules.signature(step.generator, schedules.param_list(step.gparams_one))
        rec = db[sig]
      end
      if rec then
        gparams = {}
        for k, v in pairs(step.gparams) do gparams[k] = v end
        for k, v in pairs(rec.params) do
          if gparams[k] == nil then gparams[k] = v end
        end
      end
      step.schedule = rec and schedules.format_params(rec.params) or nil
      -- the record applied: its file (schedules.nearest), signature, the CPU it was tuned on, and
      -- whether that is this CPU
      step.record = rec and { file = near and near.path, signature = sig, cpu = near and near.cpu,
                              exact = near ~= nil and near.exact } or nil
      local plist = schedules.param_list(gparams)
      -- the C name depends on what the kernel computes; the cache entry also on how it was made
      local name = names and table.concat({ names, step.generator, table.concat(schedules.param_list(step.gparams), ' ') }, '|')
      if T.cpu then step.fn = add(kernels.describe(step.generator, plist, target, name)).fn end
      if T.gpu then
        -- A view at an offset into its buffer (a channel slice, a token slice): OpenCL passes it
        -- as a sub-buffer, whose origin must be aligned to the device's base address alignment
        -- (pocl: CL_MISALIGNED_SUB_BUFFER_OFFSET for a slice 4 channels in); CUDA's kernels may
        -- take their buffers as aligned for vector loads (not checked: no NVIDIA GPU here). Such
        -- a step runs on the host copies, with host code of the GPU's host tier.
        local kt = T:gpu_kernel_target()
        step.offset_view = nil
        for _, arg in ipairs(step.args) do
          if arg.storage == 'arena' and arg.elem_offset then step.offset_view, kt = true, T.gpu.host .. '-no_runtime-user_context' end
        end
        local gname = names and name .. '|' .. (step.offset_view and T.gpu.host or T.gpu.tier)
        local k = add(kernels.describe(step.generator, schedules.param_list(step.gparams), target, gname, kt))
        step.fn_gpu, step.gpu_kernel = k.fn, k
      end
    end
  end
  local runtime = kernels.build(distinct, target)
  if T.gpu then
    local api = require('targets.gpu').apis[T.gpu.api]
    for _, k in ipairs(distinct) do
      if k.gpu then k.on_gpu = sys.read_file(k.object):find(api.run_symbol, 1, true) ~= nil end
    end
    for _, step in ipairs(program.steps) do
      if step.gpu_kernel then step.on_gpu, step.gpu_kernel = step.gpu_kernel.on_gpu or false, nil end
    end
  end
  return distinct, runtime
end

-- One kernel: its C name (from what it computes: target, generator, parameters) and its cache
-- entry (also from how it was made: the generator sources and Halide's version); name, when given,
-- is what the C name is made from instead. kernel_target: the Halide target of a GPU kernel
-- (Target:gpu_kernel_target), else the target's CPU tiers.
function kernels.describe(generator, plist, target, name, kernel_target)
  local cache = kernels.cache_dir()
  local digest = generator_sources_digest()
  local T = targets.resolve(target)
  kernel_target = kernel_target or T:kernel_target()
  local signature = table.concat({ kernel_target, generator, table.concat(plist, ' ') }, '|')
  local fn = 'foldc_' .. hash.hex(hash.string(name or signature))
  local k = { fn = fn, generator = generator, params = plist, target = kernel_target,
              gpu = kernel_target ~= T:kernel_target() or nil,
              dir = cache .. '/kernels/' .. hash.hex(hash.string(digest .. '|' .. signature .. (name and '|' .. fn or ''))) }
  k.object, k.header = k.dir .. '/' .. k.fn .. '.o', k.dir .. '/' .. k.fn .. '.h'
  return k
end

-- One word of a make recipe: shell-quoted, with make's `$` doubled; a value that cannot be one
-- (a line break, a NUL) is refused.
local function make_word(s)
  s = tostring(s)
  if s:find('[%z\r\n]') then
    error('kernel compilation: ' .. string.format('%q', s):gsub('\\\n', '\\n') .. ' cannot be put on a command line', 0)
  end
  return (sys.q(s):gsub('%$', '$$$$'))
end

-- Compile the kernels (from kernels.describe) that are not in the cache yet, and the Halide
-- runtime; returns the runtime { dir, object }. With opts.keep_going, a kernel that fails to
-- compile is marked k.failed instead of raising.
function kernels.build(distinct, target, opts)
  opts = opts or {}
  local cache = kernels.cache_dir()
  local digest = generator_sources_digest()
  local T = targets.resolve(target)
  local runtime_dir = cache .. '/runtime/' .. hash.hex(hash.string(digest .. '|' .. T:runtime_target()))
  local runtime = { dir = runtime_dir, object = runtime_dir .. '/foldc_halide_runtime.o' }

  local jobs = {}
  for _, k in ipairs(distinct) do
    if not lfs.attributes(k.object) then jobs[#jobs + 1] = k end
  end
  local need_runtime = not lfs.attributes(runtime.object)
  if #jobs == 0 and not need_runtime then return runtime end

  local gen = kernels.generator()
  sys.mkdir_p(cache .. '/kernels')
  sys.mkdir_p(cache .. '/runtime')
  sys.sweep(cache .. '/kernels')
  sys.sweep(cache .. '/runtime')
  -- one make rule per missing kernel: generate into a scratch folder, rename into the cache
  local work = sys.scratch(cache .. '/kernels/make')
  local names, rules, debris = {}, {}, { work }
  -- fn: a multi-tier kernel's per-tier objects and dispatch wrapper become one object fn.o
  local function rule(name, dir, cmd, fn)
    names[#names + 1] = name
    local tmp = sys.scratch(dir)
    debris[#debris + 1] = tmp
    -- rename into place atomically; if another process got there first, its copy is as good
    local t, d = make_word(tmp), make_word(dir)
    local join = ''
    if fn then
      local parts = make_word(tmp .. '/' .. fn) .. '-*.o ' .. make_word(tmp .. '/' .. fn .. '_wrapper.o')
      join = string.format(' && %s -r -o %s %s >> %s/log 2>&1 && rm -f %s', make_word(T.family.ld),
        make_word(tmp .. '/' .. fn .. '.o'), parts, t, parts)
    end
    rules[#rules + 1] = string.format('%s:\n\t@rm -rf %s && mkdir -p %s && %s -o %s > %s/log 2>&1%s || { cat %s/log >&2; rm -rf %s; exit 1; }\n\t@rm -f %s/log && { mv -T %s %s 2>/dev/null || rm -rf %s; }',
      name, t, t, table.concat(cmd, ' '), t, t, join, t, t, t, t, d, t)
  end
  for _, k in ipairs(jobs) do
    local cmd = { make_word(gen), '-g', make_word(k.generator), '-f', make_word(k.fn), '-e', 'object,c_header',
      make_word('target=' .. k.target) }
    for _, p in ipairs(k.params) do cmd[#cmd + 1] = make_word(p) end
    rule(k.fn, k.dir, cmd, k.target:find(',', 1, true) and k.fn or nil)
  end
  if need_runtime then
    rule('runtime', runtime.dir, { make_word(gen), '-r', 'foldc_halide_runtime', '-e', 'object',
      make_word('target=' .. T:runtime_target()) })
  end
  local all = table.concat(names, ' ')
  local written, werr = pcall(function()
    sys.mkdir_p(work)
    sys.write_file(work .. '/Makefile', 'all: ' .. all .. '\n.PHONY: all ' .. all .. '\n' .. table.concat(rules, '\n') .. '\n')
  end)
  if not written then
    sys.rm_rf(work)
    error(werr, 0)
  end
  if not opts.quiet then
    io.stderr:write(string.format('foldc: compiling %d kernel(s)%s with Halide %s for %s\n', #jobs,
      need_runtime and ' and the Halide runtime' or '', HALIDE_VERSION, target))
  end
  local argv = { 'make', '-s', '-j', tostring(opts.jobs or sys.nproc()), '-f', work .. '/Makefile' }
  if opts.keep_going then argv[#argv + 1] = '-k' end
  local ok, out = sys.run_tied(argv, { log = work .. '/log', debris = debris })
  if not ok and not opts.keep_going then
    error('kernel compilation failed: ' .. (out:gsub('%s+', ' '):sub(1, 400)), 0)
  end
  for _, k in ipairs(jobs) do
    if not lfs.attributes(k.object) then k.failed = true end
  end
  return runtime
end

return kernels
