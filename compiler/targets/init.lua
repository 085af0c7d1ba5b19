-- Targets: what foldc builds for, in one place. The rule: ISA facts the Lua side needs live in
-- compiler/targets/, one file per family (x86.lua, arm.lua), and every consumer asks a target
-- object instead of matching strings; the Halide generators derive theirs (vector width,
-- registers) from Halide's Target (halide/foldc_common.h). Adding a family is adding its file to
-- FAMILIES below; targets_spec checks that it provides every field of FIELDS.
--
-- --target takes `host` (the default: this machine's full Halide target string), a family's names
-- (x86-64: AVX-512, AVX2+FMA and SSE4.1 tiers in one library that dispatches on cpuid;
-- x86-64-avx512, x86-64-avx2, arm64), a full Halide target string arch-bits-os[-feature...], or a
-- comma list of these. The text is checked whole before anything runs (targets.check: letters,
-- digits, -, _ and , only). A target object is the tiers of one architecture (arch-bits-os), in
-- priority order; where one value is needed it answers for its primary (first) tier. Its resolved
-- string (T.string: the tiers joined by commas) is what flows through the compiler: the schedule
-- database's key and the build report's target.
--
-- GPU targets (targets/gpu.lua): `opencl`, `cuda`, `cuda_capability_NN`, a family name before one
-- (`arm64-opencl`), or a full Halide string with the feature (x86-64-linux-opencl). A GPU joins the
-- target object of its architecture as T.gpu = { api, features, tier (its host tier plus the
-- features) }; the CPU tiers named beside it (`x86-64,cuda`) are T.tiers, with T.cpu true: the
-- bundle then holds CPU kernels too and a context runs on either. A GPU alone (T.cpu false) takes
-- its host tier from its family's baseline, and T.tiers = { that tier } answers the CPU questions
-- (lanes, schedules, native_tier) for the host code. T.string lists the CPU tiers, then the GPU's
-- tier, and resolves to the same target.
local sys = require 'sys'
local gpu = require 'targets.gpu'

local targets = {}

local FAMILIES = { 'x86', 'arm' }

-- Every field a family file provides: name -> Lua type.
targets.FIELDS = {
  arch = 'string', bits = 'number', os = 'string', luajit_arch = 'string', multiarch = 'string',
  names = 'table', lanes = 'function', registers = 'function', cache = 'table', weight_block = 'number',
  peak_flags = 'function', winograd = 'function', knobs = 'table', flush = 'string', cc = 'string', ld = 'string',
  run = 'table', qemu_cpu = 'function', cpu_name = 'function', baseline = 'string',
}

targets.families = {}
for _, name in ipairs(FAMILIES) do targets.families[name] = require('targets.' .. name) end

-- Halide 14's operating systems
local OSES = { 'linux', 'windows', 'osx', 'android', 'ios', 'qurt', 'noos', 'fuchsia', 'wasmrt' }

local function one_of(list, v)
  for _, x in ipairs(list) do if x == v then return true end end
  return false
end

local function family_of_arch(arch)
  for _, name in ipairs(FAMILIES) do
    if targets.families[name].arch == arch then return targets.families[name] end
  end
end

-- the tiers of a family name (x86-64, arm64, ...), or nil
local function named(piece)
  for _, name in ipairs(FAMILIES) do
    local tiers = targets.families[name].names[piece]
    if tiers then return tiers end
  end
end

-- A GPU word with an optional family name before it (opencl, arm64-cuda_capability_80): the GPU
-- ({ api, features }) and the host tier the name gives (nil: bare, settled by targets.parse), or nil.
local function gpu_named(piece)
  local g = gpu.word(piece)
  if g then return g, nil end
  local name, w = piece:match('^(.*)%-([%w_]+)$')
  g = name and named(name) and gpu.word(w)
  if g then
    local tiers = named(name)
    return g, tiers[#tiers]
  end
end

local function all_names()
  local out = { 'host' }
  for _, name in ipairs(FAMILIES) do
    local ns = {}
    for n in pairs(targets.families[name].names) do ns[#ns + 1] = n end
    table.sort(ns)
    for _, n in ipairs(ns) do out[#out + 1] = n end
  end
  out[#out + 1] = 'opencl, cuda, cuda_capability_NN (after a name: arm64-opencl)'
  return table.concat(out, ', ')
end

-- Refuse a --target text that is not a comma list of names and Halide targets arch-bits-os[-feature
-- ...] (an architecture with a family file, Halide 14's systems, features of letters, digits and
-- '_'); raises `--target "...": ...` naming the bad character or piece. Runs nothing.
function targets.check(target)
  local function refuse(why)
    local shown = tostring(target):sub(1, 200):gsub('[^\32-\126]', function(c) return string.format('\\%d', c:byte()) end)
    error('--target "' .. shown .. '": ' .. why, 0)
  end
  if type(target) ~= 'string' or target == '' then refuse('empty target') end
  local bad = target:match('[^%w_,%-]')
  if bad then
    local q = bad == '"' and "'" or '"'
    refuse((bad:match('^[\32-\126]$') and ('character ' .. q .. bad .. q) or ('byte ' .. bad:byte()))
      .. ' is not allowed (letters, digits, "-", "_", and "," between targets)')
  end
  for piece in (target .. ','):gmatch('([^,]*),') do
    local ok, g = pcall(gpu_named, piece)
    if not ok then refuse(g) end
    if piece ~= 'host' and not named(piece) and not g then
      local arch, bits, os_name, features = piece:match('^([^-]*)%-([^-]*)%-([^-]*)(.*)$')
      local why = not arch and ('expected ' .. all_names() .. ', or arch-bits-os[-feature...], e.g. x86-64-linux-avx2-fma-sse41')
        or not family_of_arch(arch) and ('unknown architecture "' .. arch .. '" (foldc has ' .. table.concat(FAMILIES, ', ') .. ': compiler/targets/)')
        or bits ~= '32' and bits ~= '64' and ('bits "' .. bits .. '", not 32 or 64')
        or not one_of(OSES, os_name) and ('unknown operating system "' .. os_name .. '" (' .. table.concat(OSES, ', ') .. ')')
        or (features .. '-'):find('%-%-') and 'an empty feature'
      if why then refuse('"' .. piece .. '" is not a Halide target: ' .. why) end
      local split_ok, split_err = pcall(gpu.split_tier, piece)
      if not split_ok then refuse(split_err) end
    end
  end
  return target
end

-- This machine's family (by LuaJIT's architecture) and full Halide target string (Halide's own
-- get_host_target for that family), once per process.
local host_string
function targets.host()
  if host_string then return host_string end
  for _, name in ipairs(FAMILIES) do
    local f = targets.families[name]
    if f.luajit_arch == jit.arch then
      local out = sys.capture({ '/usr/lib/' .. f.multiarch .. '/halide14/get_host_target' })
      host_string = (out:gsub('%s+$', ''))
      return host_string
    end
  end
  error('--target host: this machine (' .. jit.arch .. ') has no family in compiler/targets/; name a target', 0)
end

-- A tier's arch-bits-os, its set of features and its architecture (nil for text that is no tier).
local function split(tier)
  local arch, bits, os_name, rest = tier:match('^([^-]+)%-([^-]+)%-([^-]+)(.*)$')
  if not arch then return nil end
  local features = {}
  for f in rest:gmatch('[^-]+') do features[f] = true end
  return arch .. '-' .. bits .. '-' .. os_name, features, arch
end
targets.split = split

-- This machine's CPU model as its family names it from /proc/cpuinfo (cpu_name), once per process;
-- nil where there is no /proc/cpuinfo or no family for this machine.
local host_cpu
function targets.cpu()
  if host_cpu ~= nil then return host_cpu or nil end
  host_cpu = false
  local f = io.open('/proc/cpuinfo', 'r')
  if f then
    local text = f:read('*a')
    f:close()
    for _, name in ipairs(FAMILIES) do
      local fam = targets.families[name]
      if fam.luajit_arch == jit.arch then host_cpu = fam.cpu_name(text) or false end
    end
  end
  return host_cpu or nil
end

local Target = {}
Target.__index = Target

-- The Halide target of the CPU kernels: every tier without the runtime (built once, below) and with
-- a user_context argument, so that Halide's generator emits one object dispatching between them.
function Target:kernel_target()
  local out = {}
  for i, t in ipairs(self.tiers) do out[i] = t .. '-no_runtime-user_context' end
  return table.concat(out, ',')
end

-- The Halide target of the GPU kernels (nil without a GPU): one tier, its host code and the API.
function Target:gpu_kernel_target()
  return self.gpu and self.gpu.tier .. '-no_runtime-user_context' or nil
end

-- The Halide target of the bundle's one runtime: the baseline (last) CPU tier's, with the GPU API's
-- device runtime when there is a GPU (the CPU kernels need nothing of it).
function Target:runtime_target()
  local base = self.tiers[#self.tiers]
  return (self.gpu and base .. '-' .. self.gpu.features or base) .. '-user_context'
end

-- The first tier this machine runs natively (its architecture and every feature in the host's
-- target string), or nil.
function Target:native_tier()
  local hkey, hfeat = split(targets.host())
  for _, tier in ipairs(self.tiers) do
    local key, feat = split(tier)
    local ok = key == hkey
    for f in pairs(feat) do ok = ok and hfeat[f] == true end
    if ok then return tier end
  end
end

local function new_target(tiers, g)
  local cpu = #tiers > 0
  if not cpu then tiers = { g.host } end
  local key, _, arch = split(tiers[1])
  local f = family_of_arch(arch)
  local primary = tiers[1]
  local strings = {}
  if cpu then for i, t in ipairs(tiers) do strings[i] = t end end
  if g then
    g = { api = g.api, features = g.features, host = g.host or tiers[#tiers] }
    g.tier = g.host .. '-' .. g.features
    strings[#strings + 1] = g.tier
  end
  return setmetatable({
    string = table.concat(strings, ','), tiers = tiers, cpu = cpu, gpu = g, key = key, family = f, arch = arch,
    lanes = f.lanes(primary), registers = f.registers(primary), cache = f.cache, weight_block = f.weight_block,
    winograd = f.winograd(primary), knobs = f.knobs, flush = f.flush, cc = f.cc, run = f.run,
  }, Target)
end

-- This machine's family (by LuaJIT's architecture), or nil.
local function host_family()
  for _, name in ipairs(FAMILIES) do
    if targets.families[name].luajit_arch == jit.arch then return targets.families[name] end
  end
end

-- The targets a --target text names: one target object per architecture (arch-bits-os), in order of
-- first appearance, each with its CPU tiers in the order given (duplicates dropped) and its GPU (at
-- most one per architecture; a bare GPU word takes the baseline tier of the CPU tiers of its
-- architecture, else of this machine's family).
function targets.parse(text)
  targets.check(text or 'host')
  local order, by, seen, gpus = {}, {}, {}, {}
  local function group(key)
    if not by[key] then
      by[key] = {}
      order[#order + 1] = key
    end
  end
  local function add_gpu(key, g, host)
    group(key)
    local old = gpus[key]
    if old and (old.features ~= g.features or (old.host and host and old.host ~= host)) then
      error('--target "' .. text .. '": two GPUs for ' .. key .. ' (' .. old.features .. ', ' .. g.features .. '); one per architecture', 0)
    end
    gpus[key] = { api = g.api, features = g.features, host = host or (old and old.host) }
  end
  local bare = {}
  for piece in ((text or 'host') .. ','):gmatch('([^,]*),') do
    local g, host = gpu_named(piece)
    if g and not host then
      bare[#bare + 1] = g
    elseif g then
      add_gpu(split(host), g, host)
    else
      local tiers = piece == 'host' and { targets.host() } or named(piece) or { piece }
      for _, tier in ipairs(tiers) do
        local cpu_tier, tg = gpu.split_tier(tier)
        if tg then
          add_gpu(split(cpu_tier), tg, cpu_tier)
        elseif not seen[tier] then
          seen[tier] = true
          local key = split(tier)
          group(key)
          by[key][#by[key] + 1] = tier
        end
      end
    end
  end
  for _, g in ipairs(bare) do
    -- beside CPU tiers: the first architecture's; alone: this machine's family
    local key = order[1]
    if not key then
      local f = host_family()
      if not f then error('--target "' .. text .. '": this machine (' .. jit.arch .. ') has no family in compiler/targets/; name one (arm64-opencl)', 0) end
      key = split(f.baseline)
      add_gpu(key, g, f.baseline)
    else
      add_gpu(key, g, nil)
    end
  end
  local out = {}
  for i, key in ipairs(order) do
    if #by[key] == 0 and not gpus[key].host then
      gpus[key].host = family_of_arch(select(3, split(key))).baseline
    end
    out[i] = new_target(by[key], gpus[key])
  end
  return out
end

-- One target object for a --target text or a resolved string (memoized); a text naming several
-- architectures is refused (targets.parse gives one target per architecture).
local memo = {}
function targets.resolve(text)
  text = text or 'host'
  if memo[text] then return memo[text] end
  local list = targets.parse(text)
  if #list > 1 then
    local keys = {}
    for i, t in ipairs(list) do keys[i] = t.key end
    error('--target "' .. text .. '": names ' .. #list .. ' architectures (' .. table.concat(keys, ', ') ..
      '); this command builds for one', 0)
  end
  memo[text] = list[1]
  return list[1]
end

return targets
