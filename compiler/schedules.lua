-- The schedule database: what `foldc tune` measured best for each kernel on a target and a CPU, read
-- back by every `build` (lower.lua, kernels.lua). One human-readable file per target, Halide version
-- and CPU:
--   schedules/<target>/halide<version>.txt (the first CPU tuned), halide<version>-<cpu>-<peak>.txt
-- whose first line after the title names the CPU it was tuned on and its measured FMA peak:
--   # cpu: AMD EPYC; peak 278.1 GFLOP/s per core
-- then one line per kernel signature (generator and its shape parameters, sorted), tab-separated:
--   <signature> TAB <schedule parameters, or "default"> TAB <comment: measured GFLOP/s, default, date>
-- e.g.
--   conv2d cin=64 cout=64 ... stride_y=1	tile_co=4 tile_x=14 loop_order=1	# 221.3 GFLOP/s vs 208.0 default, ...
-- "default" means the generator's heuristics won (the kernel was tuned; nothing to add).
-- A convolution's algorithm record (lower.choose) is a line keyed by "algo " and the signature of
-- its direct conv2d kernel (the one conv2d.lower builds when the conv runs direct), whose value is
-- the algorithm that won in the model (direct, winograd2 or winograd4):
--   algo conv2d cin=64 cout=64 ... w_block=16	winograd4	# direct 0.970 ms, winograd2 0.520 ms, ...
-- A build reads the nearest records (schedules.nearest): a record holds schedule parameters and
-- algorithm choices, never instructions, so any records of the target's architecture are safe and
-- nearness is speed only: the folders of the same arch-bits-os and vector width as the target's
-- primary tier, the most features shared with it first, then the fewest it lacks; in the first of
-- them with records, the file of this CPU (same model name, peak within SAME_PEAK) first, else the
-- closest peak. foldc tune reads and writes only the target's own file for this CPU
-- (schedules.own_path). FOLDC_SCHEDULES overrides the folder (tests); FOLDC_SCHEDULES=none
-- disables the database.
local lfs = require 'lfs'
local sys = require 'sys'
local targets = require 'targets'

local schedules = {}

schedules.HALIDE_VERSION = '14'

function schedules.root()
  local env = os.getenv('FOLDC_SCHEDULES')
  if env and env ~= '' then return env ~= 'none' and env or nil end
  return (os.getenv('FOLDC_ROOT') or '.') .. '/schedules'
end

-- Two peaks of one CPU model within this ratio are the same CPU: the two kinds of this project's
-- machines differ by 2.2x (278 vs 125 GFLOP/s), and compiler/peak.c measures wall time, so a loaded
-- machine reads low (214-221 GFLOP/s at load 4 on 2 cores, 81-108 at load 6).
schedules.SAME_PEAK = 1.8

local FILE = '^halide' .. schedules.HALIDE_VERSION .. '%.txt$'
local CPU_FILE = '^halide' .. schedules.HALIDE_VERSION .. '%-[%w_%-]+%.txt$'

-- This machine's { cpu = model name, peak = GFLOP/s (backend.peak_gflops; 0 when it cannot be
-- measured: the model name alone decides) } where it runs target T natively, else nil (false
-- memoized), once per process and target.
local machines = {}
function schedules.machine(T)
  if machines[T.string] == nil then
    machines[T.string] = false
    if T:native_tier() then
      local ok, peak = pcall(require('backend').peak_gflops, T.string)
      machines[T.string] = { cpu = targets.cpu() or 'unknown', peak = ok and peak or 0 }
    end
  end
  return machines[T.string] or nil
end

-- The CPU a records file says it was tuned on: { cpu, peak } from its "# cpu:" line, or nil.
local function file_cpu(path)
  local n = 0
  for line in io.lines(path) do
    n = n + 1
    if line:match('^# cpu:') then
      local cpu, peak = line:match('^# cpu: (.-); peak ([%d.]+) GFLOP/s per core$')
      if not cpu or not tonumber(peak) then
        error(string.format('%s:%d: expected "# cpu: <model name>; peak <number> GFLOP/s per core", got "%s"', path, n,
          line:sub(1, 200)), 0)
      end
      return { cpu = cpu, peak = tonumber(peak) }
    end
    if not line:match('^%s*#') and line:match('%S') then return nil end
  end
end

-- Whether records tuned on cpu ({ cpu, peak }, nil: unknown) were tuned on this machine m.
local function same_cpu(cpu, m)
  if not cpu or not m or cpu.cpu ~= m.cpu then return false end
  if cpu.peak <= 0 or m.peak <= 0 then return true end
  return math.max(cpu.peak, m.peak) / math.min(cpu.peak, m.peak) <= schedules.SAME_PEAK
end

-- The records files of a folder, sorted by name.
local function files_of(dir)
  local out = {}
  if lfs.attributes(dir, 'mode') ~= 'directory' then return out end
  for f in lfs.dir(dir) do
    if f:match(FILE) or f:match(CPU_FILE) then out[#out + 1] = f end
  end
  table.sort(out)
  return out
end

-- The records a build for target reads: { path, folder (its name), cpu, peak (where tuned; nil
-- when the file does not say), exact (tuned on this CPU), machine = { cpu, peak } (nil when this
-- machine does not run the target) }, or nil when there are none (see the top comment).
function schedules.nearest(target)
  local root = schedules.root()
  if not root or lfs.attributes(root, 'mode') ~= 'directory' then return nil end
  local T = targets.resolve(target)
  local _, want = targets.split(T.tiers[1])
  local folders = {}
  for name in lfs.dir(root) do
    local first = name:match('^[%w_%-]+') -- a folder's primary tier
    local key, feat, arch = targets.split(first or '')
    if key == T.key and not name:find('[^%w_,%-]') and T.family.lanes(first) == T.lanes then
      local shared, extra = 0, 0
      for f in pairs(feat) do
        if want[f] then shared = shared + 1 else extra = extra + 1 end
      end
      folders[#folders + 1] = { name = name, shared = shared, extra = extra, arch = arch }
    end
  end
  table.sort(folders, function(a, b)
    if a.shared ~= b.shared then return a.shared > b.shared end
    if a.extra ~= b.extra then return a.extra < b.extra end
    return a.name < b.name
  end)
  for _, folder in ipairs(folders) do
    local files = files_of(root .. '/' .. folder.name)
    if #files > 0 then
      local m = schedules.machine(T)
      local best
      for _, f in ipairs(files) do
        local path = root .. '/' .. folder.name .. '/' .. f
        local c = file_cpu(path)
        local r = { path = path, folder = folder.name, cpu = c and c.cpu, peak = c and c.peak, exact = same_cpu(c, m), machine = m }
        -- ranked: this CPU, then the closest peak, then the name
        r.dist = (c and m and c.peak > 0 and m.peak > 0) and math.abs(math.log(c.peak / m.peak)) or math.huge
        if not best or (r.exact and not best.exact) or (r.exact == best.exact and r.dist < best.dist) then best = r end
      end
      best.dist = nil
      return best
    end
  end
end

-- The file of the records a build for target reads (schedules.nearest), or nil.
function schedules.path(target)
  local near = schedules.nearest(target)
  return near and near.path
end

-- The file foldc tune reads and writes for target on this CPU: in the target's own folder, the
-- file tuned on this CPU, or one without a "# cpu:" line (written by hand; tune adds the line),
-- else halide<version>.txt when there is none, else halide<version>-<model>-<peak>.txt. nil with
-- FOLDC_SCHEDULES=none.
function schedules.own_path(target)
  local root = schedules.root()
  if not root then return nil end
  local T = targets.resolve(target)
  local dir = root .. '/' .. T.string
  local m = schedules.machine(T)
  for _, f in ipairs(files_of(dir)) do
    local c = file_cpu(dir .. '/' .. f)
    if not c or same_cpu(c, m) then return dir .. '/' .. f end
  end
  local plain = dir .. '/halide' .. schedules.HALIDE_VERSION .. '.txt'
  if not m or not sys.exists(plain) then return plain end
  local slug = m.cpu:lower():gsub('[^%w]+', '-'):gsub('^%-+', ''):gsub('%-+$', '')
  return string.format('%s/halide%s-%s-%dgflops.txt', dir, schedules.HALIDE_VERSION, slug, math.floor(m.peak + 0.5))
end

-- Generator parameters in a fixed order ("k=v" sorted by k): signatures, the kernel cache key and
-- the generator's command line.
function schedules.param_list(gparams)
  local keys = {}
  for k in pairs(gparams) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = k .. '=' .. tostring(gparams[k]) end
  return out
end

-- The signature of a kernel: generator and shape parameters ("k=v" sorted), no schedule.
function schedules.signature(generator, plist)
  return generator .. ' ' .. table.concat(plist, ' ')
end

-- The algorithms an algorithm record may name.
schedules.ALGOS = { 'direct', 'winograd2', 'winograd4' }

-- The key of a convolution's algorithm record: "algo " .. its direct conv2d kernel's signature
-- (direct_gparams: that kernel's generator parameters).
function schedules.algo_key(direct_gparams)
  return 'algo ' .. schedules.signature('conv2d', schedules.param_list(direct_gparams))
end

-- "a=1 b=2" <-> { a = '1', b = '2' }
function schedules.parse_params(s)
  local t = {}
  if s == 'default' then return t end
  for k, v in s:gmatch('([%w_]+)=([^%s]+)') do t[k] = v end
  return t
end

function schedules.format_params(t)
  local out = schedules.param_list(t)
  return #out > 0 and table.concat(out, ' ') or 'default'
end

-- { [signature] = { params = {k = v}, comment = '...' }, ["algo " .. signature] = { algo = 'direct',
-- comment = '...' } } of a records file ({} when none).
local function load_file(path)
  local db = {}
  if not path or not sys.exists(path) then return db end
  local n = 0
  for line in io.lines(path) do
    n = n + 1
    if not line:match('^%s*#') and line:match('%S') then
      local sig, value, comment = line:match('^([^\t]+)\t([^\t]+)\t?(.*)$')
      if not sig then error(string.format('%s:%d: expected "signature<TAB>schedule<TAB>comment"', path, n), 0) end
      if sig:match('^algo ') then
        local known = false
        for _, a in ipairs(schedules.ALGOS) do known = known or a == value end
        if not known then
          error(string.format('%s:%d: algorithm record "%s": expected %s, got "%s"', path, n, sig,
            table.concat(schedules.ALGOS, ', '), value), 0)
        end
        db[sig] = { algo = value, comment = comment }
      else
        db[sig] = { params = schedules.parse_params(value), comment = comment }
      end
    end
  end
  return db
end

-- The records a build for target uses (schedules.nearest).
function schedules.load(target) return load_file(schedules.path(target)) end

-- The records of target on this CPU (schedules.own_path): foldc tune's.
function schedules.load_own(target) return load_file(schedules.own_path(target)) end

-- Write the records of target on this CPU (schedules.own_path) atomically, sorted by signature,
-- with the file's "# cpu:" line (this machine's model and peak for a new file).
function schedules.save(target, db)
  local path = schedules.own_path(target)
  if not path then error('FOLDC_SCHEDULES=none: nowhere to save schedules', 0) end
  sys.mkdir_p(path:match('^(.*)/[^/]*$'))
  local cpu = sys.exists(path) and file_cpu(path) or schedules.machine(targets.resolve(target))
  local sigs = {}
  for sig in pairs(db) do sigs[#sigs + 1] = sig end
  table.sort(sigs)
  local lines = { '# foldc tune results for ' .. target .. ', Halide ' .. schedules.HALIDE_VERSION ..
    ': signature <TAB> schedule <TAB> measurement; "algo" lines: convolution algorithms. Read by foldc build; see schedules/README.md.' }
  if cpu then lines[2] = string.format('# cpu: %s; peak %.1f GFLOP/s per core', cpu.cpu, cpu.peak) end
  for _, sig in ipairs(sigs) do
    local r = db[sig]
    lines[#lines + 1] = sig .. '\t' .. (r.algo or schedules.format_params(r.params)) .. '\t' .. (r.comment or '')
  end
  local tmp = path .. '.tmp.' .. sys.pid()
  sys.write_file(tmp, table.concat(lines, '\n') .. '\n')
  assert(os.rename(tmp, path))
end

-- One line for a build's report: which records target uses and where they were tuned.
function schedules.report(target)
  local T = targets.resolve(target)
  local near = schedules.nearest(target)
  if not near then
    return 'schedules: none for ' .. T.string .. (schedules.root() and '' or ' (FOLDC_SCHEDULES=none)') ..
      ': generator defaults and the cost model'
  end
  local root = os.getenv('FOLDC_ROOT') or '.'
  local file = near.path:sub(1, #root + 1) == root .. '/' and near.path:sub(#root + 2) or near.path
  local tuned = near.cpu and string.format('%s, peak %.1f GFLOP/s', near.cpu, near.peak) or 'a CPU the file does not name'
  if near.exact then
    return string.format('schedules: %s%s (tuned on this CPU: %s)', near.folder == T.string and '' or 'nearest records ',
      file, tuned)
  end
  return string.format('schedules: nearest records %s (tuned on another CPU: %s; %s)', file, tuned,
    near.machine and string.format('this CPU: %s, %.1f GFLOP/s', near.machine.cpu, near.machine.peak)
      or 'this machine does not run ' .. T.string .. ' natively')
end

return schedules
