-- The schedule database: what `foldc tune` measured best for each kernel on a target, read back by
-- every `build` for that target (kernels.lua). One human-readable file per target and Halide version:
--   schedules/<target>/halide<version>.txt
-- one line per kernel signature (generator and its shape parameters, sorted), tab-separated:
--   <signature> TAB <schedule parameters, or "default"> TAB <comment: measured GFLOP/s, default, date>
-- e.g.
--   conv2d cin=64 cout=64 ... stride_y=1	tile_co=4 tile_x=14 loop_order=1	# 221.3 GFLOP/s vs 208.0 default, ...
-- "default" means the generator's heuristics won (the kernel was tuned; nothing to add).
-- A convolution's algorithm record (lower.choose) is a line keyed by "algo " and the signature of
-- its direct conv2d kernel (the one conv2d.lower builds when the conv runs direct), whose value is
-- the algorithm that won in the model (direct, winograd2 or winograd4):
--   algo conv2d cin=64 cout=64 ... w_block=16	winograd4	# direct 0.970 ms, winograd2 0.520 ms, ...
-- FOLDC_SCHEDULES overrides the folder (tests); FOLDC_SCHEDULES=none disables the database.
local sys = require 'sys'

local schedules = {}

schedules.HALIDE_VERSION = '14'

function schedules.root()
  local env = os.getenv('FOLDC_SCHEDULES')
  if env and env ~= '' then return env ~= 'none' and env or nil end
  return (os.getenv('FOLDC_ROOT') or '.') .. '/schedules'
end

function schedules.path(target)
  local root = schedules.root()
  if not root then return nil end
  return root .. '/' .. target .. '/halide' .. schedules.HALIDE_VERSION .. '.txt'
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
  local keys = {}
  for k in pairs(t) do keys[#keys + 1] = k end
  table.sort(keys)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = k .. '=' .. tostring(t[k]) end
  return #out > 0 and table.concat(out, ' ') or 'default'
end

-- { [signature] = { params = {k = v}, comment = '...' }, ["algo " .. signature] = { algo = 'direct',
-- comment = '...' } } for a target ({} when none).
function schedules.load(target)
  local path = schedules.path(target)
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

-- Write the database of a target atomically, sorted by signature.
function schedules.save(target, db)
  local path = schedules.path(target)
  if not path then error('FOLDC_SCHEDULES=none: nowhere to save schedules', 0) end
  sys.mkdir_p(path:match('^(.*)/[^/]*$'))
  local sigs = {}
  for sig in pairs(db) do sigs[#sigs + 1] = sig end
  table.sort(sigs)
  local lines = { '# foldc tune results for ' .. target .. ', Halide ' .. schedules.HALIDE_VERSION ..
    ': signature <TAB> schedule <TAB> measurement; "algo" lines: convolution algorithms. Read by foldc build; see schedules/README.md.' }
  for _, sig in ipairs(sigs) do
    local r = db[sig]
    lines[#lines + 1] = sig .. '\t' .. (r.algo or schedules.format_params(r.params)) .. '\t' .. (r.comment or '')
  end
  local tmp = path .. '.tmp.' .. sys.pid()
  sys.write_file(tmp, table.concat(lines, '\n') .. '\n')
  assert(os.rename(tmp, path))
end

return schedules
