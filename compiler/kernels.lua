-- Kernel compilation: each distinct (generator, shape parameters, schedule, target) becomes one
-- Halide AOT object, compiled by the foldc_gen generator binary and cached under its content hash
-- (which covers the generator sources and Halide's version too), so rebuilding a model is seconds.
-- Missing kernels are compiled in parallel through a generated Makefile, kept in the cache and run
-- tied to foldc (sys.run_tied: nothing keeps running or stays behind when foldc dies); every value
-- in it is a checked target or a quoted word.
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

local ARCHS = { 'x86', 'arm', 'powerpc', 'hexagon', 'wasm', 'riscv' }
local OSES = { 'linux', 'windows', 'osx', 'android', 'ios', 'qurt', 'noos', 'fuchsia', 'wasmrt' }
local function one_of(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

-- Refuse a target string that is not 'host' or Halide targets arch-bits-os[-feature...] (Halide
-- 14's architectures and systems; features of letters, digits and '_'), comma-separated; raises
-- `--target "...": ...` naming the bad character or piece.
function kernels.check_target(target)
  local function refuse(why)
    local shown = tostring(target):sub(1, 200):gsub('[^\32-\126]', function(c) return string.format('\\%d', c:byte()) end)
    error('--target "' .. shown .. '": ' .. why, 0)
  end
  if type(target) ~= 'string' or target == '' then refuse('empty target') end
  if target == 'host' then return target end
  local bad = target:match('[^%w_,%-]')
  if bad then
    local q = bad == '"' and "'" or '"'
    refuse((bad:match('^[\32-\126]$') and ('character ' .. q .. bad .. q) or ('byte ' .. bad:byte()))
      .. ' is not allowed (letters, digits, "-", "_", and "," between targets)')
  end
  for piece in (target .. ','):gmatch('([^,]*),') do
    local arch, bits, os_name, features = piece:match('^([^-]*)%-([^-]*)%-([^-]*)(.*)$')
    local why = not arch and 'expected arch-bits-os[-feature...], e.g. x86-64-linux-avx2-fma-sse41'
      or not one_of(ARCHS, arch) and ('unknown architecture "' .. arch .. '" (' .. table.concat(ARCHS, ', ') .. ')')
      or bits ~= '32' and bits ~= '64' and ('bits "' .. bits .. '", not 32 or 64')
      or not one_of(OSES, os_name) and ('unknown operating system "' .. os_name .. '" (' .. table.concat(OSES, ', ') .. ')')
      or (features .. '-'):find('%-%-') and 'an empty feature'
    if why then refuse('"' .. piece .. '" is not a Halide target: ' .. why) end
  end
  return target
end

-- "host" -> the host's full target string; anything else is checked (kernels.check_target).
function kernels.resolve_target(target)
  if target == nil or target == 'host' then
    local out = sys.capture({ '/usr/lib/x86_64-linux-gnu/halide14/get_host_target' })
    return (out:gsub('%s+$', ''))
  end
  return kernels.check_target(target)
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
  sys.sweep(cache .. '/kernels')
  sys.sweep(cache .. '/runtime')
  -- one make rule per missing kernel: generate into a scratch folder, rename into the cache
  local work = sys.scratch(cache .. '/kernels/make')
  local names, rules, debris = {}, {}, { work }
  local function rule(name, dir, cmd)
    names[#names + 1] = name
    local tmp = sys.scratch(dir)
    debris[#debris + 1] = tmp
    -- rename into place atomically; if another process got there first, its copy is as good
    local t, d = make_word(tmp), make_word(dir)
    rules[#rules + 1] = string.format('%s:\n\t@rm -rf %s && mkdir -p %s && %s -o %s > %s/log 2>&1 || { cat %s/log >&2; rm -rf %s; exit 1; }\n\t@rm -f %s/log && { mv -T %s %s 2>/dev/null || rm -rf %s; }',
      name, t, t, table.concat(cmd, ' '), t, t, t, t, t, t, d, t)
  end
  for _, k in ipairs(jobs) do
    local cmd = { make_word(gen), '-g', make_word(k.generator), '-f', make_word(k.fn), '-e', 'object,c_header',
      make_word('target=' .. kernel_target) }
    for _, p in ipairs(k.params) do cmd[#cmd + 1] = make_word(p) end
    rule(k.fn, k.dir, cmd)
  end
  if need_runtime then
    rule('runtime', runtime.dir, { make_word(gen), '-r', 'foldc_halide_runtime', '-e', 'object',
      make_word('target=' .. target .. '-user_context') })
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
