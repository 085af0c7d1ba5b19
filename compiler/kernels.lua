-- Kernel compilation: each distinct (generator, shape parameters, schedule, target) becomes one
-- Halide AOT object, compiled by the foldc_gen generator binary and cached under its content hash
-- (which covers the generator sources and Halide's version too), so rebuilding a model is seconds.
-- Missing kernels are compiled in parallel through a generated Makefile.
local lfs = require 'lfs'
local hash = require 'hash'
local sys = require 'sys'
local schedules = require 'schedules'

local kernels = {}

local root = os.getenv('FOLDC_ROOT') or '.'
local HALIDE_VERSION = '14'

-- Generator parameters in a fixed order: the cache key and the command line.
function kernels.param_list(gparams)
  local keys = {}
  for k in pairs(gparams) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = k .. '=' .. tostring(gparams[k]) end
  return out
end

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

-- "host" -> the host's full target string; anything else is used as given.
function kernels.resolve_target(target)
  if target == nil or target == 'host' then
    local out = sys.capture({ '/usr/lib/x86_64-linux-gnu/halide14/get_host_target' })
    return (out:gsub('%s+$', ''))
  end
  if not target:match('^[%w_]+%-%d+%-[%w_]+') then
    error('target "' .. target .. '" is not a Halide target string (arch-bits-os[-feature...], e.g. x86-64-linux-avx2-fma-sse41)', 0)
  end
  return target
end

-- Attach .fn (C function name) and .object/.header to every kernel step; compile what is missing.
-- Returns the list of distinct kernels and the runtime object path.
function kernels.compile(program, target)
  local cache = kernels.cache_dir()
  local digest = generator_sources_digest()
  local kernel_target = target .. '-no_runtime-user_context'
  local distinct, by_fn = {}, {}
  local db = schedules.load(target)
  for _, step in ipairs(program.steps) do
    if step.kind == 'kernel' then
      -- a schedule record for this target (schedules/, written by foldc tune) adds its parameters
      local gparams, sig = step.gparams, schedules.signature(step.generator, kernels.param_list(step.gparams))
      local rec = db[sig]
      if rec then
        gparams = {}
        for k, v in pairs(step.gparams) do gparams[k] = v end
        for k, v in pairs(rec.params) do
          if gparams[k] == nil then gparams[k] = v end
        end
      end
      step.schedule = rec and schedules.format_params(rec.params) or nil
      local plist = kernels.param_list(gparams)
      -- the C name depends on what the kernel computes; the cache entry also on how it was made
      step.fn = kernels.describe(step.generator, plist, target).fn
      if not by_fn[step.fn] then
        local k = kernels.describe(step.generator, plist, target)
        by_fn[step.fn] = k
        distinct[#distinct + 1] = k
      end
    end
  end
  return distinct, kernels.build(distinct, target)
end

-- One kernel: its C name (from what it computes: target, generator, parameters) and its cache
-- entry (also from how it was made: the generator sources and Halide's version).
function kernels.describe(generator, plist, target)
  local cache = kernels.cache_dir()
  local digest = generator_sources_digest()
  local signature = table.concat({ target .. '-no_runtime-user_context', generator, table.concat(plist, ' ') }, '|')
  local k = { fn = 'foldc_' .. hash.hex(hash.string(signature)), generator = generator, params = plist,
              dir = cache .. '/kernels/' .. hash.hex(hash.string(digest .. '|' .. signature)) }
  k.object, k.header = k.dir .. '/' .. k.fn .. '.o', k.dir .. '/' .. k.fn .. '.h'
  return k
end

-- Compile the kernels (from kernels.describe) that are not in the cache yet, and the Halide
-- runtime; returns the runtime { dir, object }. With opts.keep_going, a kernel that fails to
-- compile is marked k.failed instead of raising.
function kernels.build(distinct, target, opts)
  opts = opts or {}
  local cache = kernels.cache_dir()
  local digest = generator_sources_digest()
  local kernel_target = target .. '-no_runtime-user_context'
  local runtime_dir = cache .. '/runtime/' .. hash.hex(hash.string(digest .. '|' .. target .. '-user_context'))
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
  -- one make rule per missing kernel: generate into a temporary folder, rename into the cache
  local names, rules = {}, {}
  local function rule(name, dir, cmd)
    names[#names + 1] = name
    local tmp = dir .. '.tmp.' .. sys.pid()
    -- rename into place atomically; if another process got there first, its copy is as good
    rules[#rules + 1] = string.format('%s:\n\t@rm -rf %s && mkdir -p %s && %s -o %s > %s/log 2>&1 || { cat %s/log >&2; rm -rf %s; exit 1; }\n\t@rm -f %s/log && { mv -T %s %s 2>/dev/null || rm -rf %s; }',
      name, sys.q(tmp), sys.q(tmp), cmd, sys.q(tmp), sys.q(tmp), sys.q(tmp), sys.q(tmp), sys.q(tmp), sys.q(tmp), sys.q(dir), sys.q(tmp))
  end
  for _, k in ipairs(jobs) do
    rule(k.fn, k.dir, string.format('%s -g %s -f %s -e object,c_header target=%s %s', sys.q(gen), k.generator, k.fn,
      kernel_target, table.concat(k.params, ' ')))
  end
  if need_runtime then
    rule('runtime', runtime.dir, string.format('%s -r foldc_halide_runtime -e object target=%s-user_context', sys.q(gen), target))
  end
  local mkfile = os.tmpname()
  local all = table.concat(names, ' ')
  sys.write_file(mkfile, 'all: ' .. all .. '\n.PHONY: all ' .. all .. '\n' .. table.concat(rules, '\n') .. '\n')
  if not opts.quiet then
    io.stderr:write(string.format('foldc: compiling %d kernel(s)%s with Halide %s for %s\n', #jobs,
      need_runtime and ' and the Halide runtime' or '', HALIDE_VERSION, target))
  end
  local argv = { 'make', '-s', '-j', tostring(opts.jobs or sys.nproc()), '-f', mkfile }
  if opts.keep_going then argv[#argv + 1] = '-k' end
  local ok, out = sys.run(argv)
  os.remove(mkfile)
  if not ok and not opts.keep_going then
    error('kernel compilation failed: ' .. (out:gsub('%s+', ' '):sub(1, 400)), 0)
  end
  for _, k in ipairs(jobs) do
    if not lfs.attributes(k.object) then k.failed = true end
  end
  return runtime
end

return kernels
