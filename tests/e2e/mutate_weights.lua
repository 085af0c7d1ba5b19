-- Mutation testing of the weights readers (torch.save zip and legacy, safetensors): corrupted copies
-- of real checkpoints must load or fail with a one-line error naming the file, never crash, hang or
-- raise an internal error (a Lua runtime error, a non-string error).
--   luajit mutate_weights.lua WORKDIR CASES SEED SEEDFILE...
-- Case i uses its own RNG stream (SEED, i), so one case can be replayed alone with
--   luajit mutate_weights.lua WORKDIR 1 SEED SEEDFILE... --only I
-- Before each case its number is written to WORKDIR/current (mutate_weights.sh reports it if the
-- process dies); the mutated file is WORKDIR/case.<ext>. Failing cases are kept as WORKDIR/fail-I.<ext>.
-- Prints a summary by mutation kind (MUTATE_VERBOSE=1: every case and its error); exit status 1 if
-- any case failed.
local root = os.getenv('FOLDC_ROOT') or '.'
package.path = root .. '/compiler/?.lua;' .. root .. '/compiler/?/init.lua;' .. root .. '/?.lua;' .. package.path
local weights = require 'weights'

local workdir, ncases, seed = arg[1], tonumber(arg[2]), tonumber(arg[3])
local seeds, only = {}, nil
local i = 4
while arg[i] do
  if arg[i] == '--only' then only = tonumber(arg[i + 1]); i = i + 2
  else seeds[#seeds + 1] = arg[i]; i = i + 1 end
end
assert(workdir and ncases and seed and #seeds > 0, 'usage: mutate_weights.lua WORKDIR CASES SEED SEEDFILE... [--only I]')

local function slurp(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end

-- The byte range [b, e] of the pickle inside a seed: ARCHIVE/data.pkl's payload in a zip (from its
-- local header), the bytes before the first storage in a legacy file (roughly), else nil.
local function pickle_region(s)
  if s:sub(1, 4) == 'PK\3\4' then
    local pos = 1
    while pos and pos < #s - 30 do
      if s:sub(pos, pos + 3) ~= 'PK\3\4' then break end
      local function u(o, n)
        local v = 0
        for k = n - 1, 0, -1 do v = v * 256 + s:byte(pos + o + k) end
        return v
      end
      local csize, nlen, xlen = u(18, 4), u(26, 2), u(28, 2)
      local name = s:sub(pos + 30, pos + 29 + nlen)
      local data = pos + 30 + nlen + xlen
      if name:match('/data%.pkl$') then return data, data + csize - 1 end
      pos = data + csize
    end
    return nil
  end
  if s:byte(1) == 0x80 then
    local e = s:find('\128\2', 200, true) -- the storage-keys pickle starts with PROTO
    return 1, math.min(#s, e or math.floor(#s / 3))
  end
  return nil
end

local files = {}
for _, p in ipairs(seeds) do
  local s = slurp(p)
  local b, e = pickle_region(s)
  files[#files + 1] = { path = p, bytes = s, pb = b, pe = e, ext = p:match('%.([%w_]+)$') or 'bin' }
end

local INTERESTING = { 0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x2e, 0x28, 0x29, 0x4a, 0x8a, 0x71, 0x68, 0x52, 0x63 }

local rnd -- set per case
local function pos_in(s, b, e) b, e = b or 1, e or #s; return rnd(b, math.max(b, e)) end
local function set_byte(s, p, v) return s:sub(1, p - 1) .. string.char(v) .. s:sub(p + 1) end

local MUTATIONS = {
  { 'flip bits', function(s) -- 1..4 random bit flips anywhere
    for _ = 1, rnd(1, 4) do
      local p = pos_in(s)
      s = set_byte(s, p, bit.bxor(s:byte(p), bit.lshift(1, rnd(0, 7))))
    end
    return s
  end },
  { 'interesting bytes', function(s) -- 1..8 bytes set to boundary values anywhere
    for _ = 1, rnd(1, 8) do s = set_byte(s, pos_in(s), INTERESTING[rnd(1, #INTERESTING)]) end
    return s
  end },
  { 'truncate', function(s) return s:sub(1, rnd(0, #s - 1)) end },
  { 'splice', function(s, other) -- overwrite with a chunk of another seed
    local n = rnd(1, math.min(256, #other))
    local from = rnd(1, #other - n + 1)
    local at = rnd(1, #s)
    return s:sub(1, at - 1) .. other:sub(from, from + n - 1) .. s:sub(at + n)
  end },
  { 'insert/delete', function(s) -- shift everything after a point
    local at = pos_in(s)
    if rnd(0, 1) == 0 then return s:sub(1, at - 1) .. s:sub(at + rnd(1, 64)) end
    local junk = {}
    for k = 1, rnd(1, 64) do junk[k] = string.char(rnd(0, 255)) end
    return s:sub(1, at - 1) .. table.concat(junk) .. s:sub(at)
  end },
  { 'pickle bytes', function(s, _, f) -- 1..4 random or boundary bytes inside the pickle
    for _ = 1, rnd(1, 4) do
      local v = rnd(0, 1) == 0 and rnd(0, 255) or INTERESTING[rnd(1, #INTERESTING)]
      s = set_byte(s, pos_in(s, f.pb, f.pe), v)
    end
    return s
  end },
  { 'pickle ints', function(s, _, f) -- a run of 0xff / 0x00 / 0x7f inside the pickle: huge sizes
    local at = pos_in(s, f.pb, f.pe)
    local v = ({ 0xff, 0x00, 0x7f, 0x80 })[rnd(1, 4)]
    local n = rnd(1, 8)
    return s:sub(1, at - 1) .. string.rep(string.char(v), n) .. s:sub(at + n)
  end },
  { 'tail bytes', function(s) -- zip central directory / last storages
    for _ = 1, rnd(1, 4) do s = set_byte(s, pos_in(s, math.max(1, #s - 400), #s), rnd(0, 255)) end
    return s
  end },
}

local stats, failures = {}, 0
for _, m in ipairs(MUTATIONS) do stats[m[1]] = { n = 0, loaded = 0, refused = 0, failed = 0 } end

local function write(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

local function bad_error(e, path)
  if type(e) ~= 'string' then return 'non-string error (' .. type(e) .. ')' end
  if e:find('\n') then return 'multi-line error' end
  if e:sub(1, #path + 2) ~= path .. ': ' then return 'error does not start with the file name' end
  if e:find('%.lua:%d+:') or e:find('attempt to ') or e:find('bad argument') or e:find('stack overflow') then
    return 'internal error'
  end
  return nil
end

local t0 = os.clock()
local first, last = 1, ncases
if only then first, last = only, only end
local current = workdir .. '/current'
for c = first, last do
  -- one RNG stream per case: LuaJIT's math.random is deterministic for a given seed
  math.randomseed(seed * 1000003 + c)
  rnd = math.random
  local f = files[rnd(1, #files)]
  local m = MUTATIONS[rnd(1, #MUTATIONS)]
  if not f.pb and (m[1] == 'pickle bytes' or m[1] == 'pickle ints') then m = MUTATIONS[1] end
  local other = files[rnd(1, #files)].bytes
  local mutated = m[2](f.bytes, other, f)
  local path = workdir .. '/case.' .. f.ext
  write(path, mutated)
  write(current, c .. ' ' .. m[1] .. ' of ' .. f.path .. '\n')
  local st = stats[m[1]]
  st.n = st.n + 1
  local c0 = os.clock()
  local ok, e = pcall(weights.load, path, { quiet = true })
  local dt = os.clock() - c0
  local why = (not ok) and bad_error(e, path) or nil
  if os.getenv("MUTATE_VERBOSE") then print(c, m[1], f.path:match("[^/]*$"), ok and "LOADED" or e) end
  if not why and dt > 2 then why = string.format('slow: %.1f s', dt) end
  if why then
    st.failed = st.failed + 1
    failures = failures + 1
    local keep = string.format('%s/fail-%d.%s', workdir, c, f.ext)
    write(keep, mutated)
    print(string.format('FAIL case %d (%s of %s): %s: %s [kept as %s]', c, m[1], f.path, why, tostring(e), keep))
  elseif ok then
    st.loaded = st.loaded + 1
  else
    st.refused = st.refused + 1
  end
  if c % 200 == 0 then collectgarbage() end
end
local total = last - first + 1
print(string.format('%d mutated files through the weights readers in %.1f s (seed %d, %d seed files):',
  total, os.clock() - t0, seed, #files))
for _, m in ipairs(MUTATIONS) do
  local st = stats[m[1]]
  print(string.format('  %-18s %6d cases: %6d loaded, %6d refused with a clean error, %d failed',
    m[1], st.n, st.loaded, st.refused, st.failed))
end
os.remove(current)
os.exit(failures == 0 and 0 or 1)
