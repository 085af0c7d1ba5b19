-- Mutation testing of the weights readers (torch.save zip and legacy, safetensors) and of what
-- reads their values: corrupted copies of real checkpoints must load or fail with a one-line error
-- naming the file, never crash, hang or raise an internal error (a Lua runtime error, a non-string
-- error). Besides byte-level mutations, 'float data' writes hostile values into the float data of
-- the seeds whose layout is known (NaNs whose upper bits match LuaJIT's type tags, other NaNs,
-- infinities, negative BatchNorm variances, random bits) in every float dtype; a zip's CRC-32 is
-- then fixed so the values reach the reader. Every file that loads is listed as `foldc weights`
-- does (no control character may be printed), and with --model SPEC FILE every file that loads
-- from FILE's family (FILE, and the zip and legacy .pth written from it at start, with F16, F64
-- and BF16 storages among the F32 ones) also goes through the front end as `foldc build` does
-- without kernels (bind + passes: pipeline.deploy_graph), half of the time with --allow-nonfinite.
--   luajit mutate_weights.lua WORKDIR CASES SEED [--model SPEC FILE] SEEDFILE...
-- Case i uses its own RNG stream (SEED, i), so one case can be replayed alone with
--   luajit mutate_weights.lua WORKDIR 1 SEED [--model SPEC FILE] SEEDFILE... --only I
-- Before each case its number is written to WORKDIR/current (mutate_weights.sh reports it if the
-- process dies); the mutated file is WORKDIR/case.<ext>. Failing cases are kept as WORKDIR/fail-I.<ext>.
-- Prints a summary by mutation kind (MUTATE_VERBOSE=1: every case and its error); exit status 1 if
-- any case failed.
local root = os.getenv('FOLDC_ROOT') or '.'
package.path = root .. '/compiler/?.lua;' .. root .. '/compiler/?/init.lua;' .. root .. '/?.lua;' .. package.path
local ffi = require 'ffi'
local cjson = require 'cjson'
local weights = require 'weights'
local bind = require 'bind'
local pipeline = require 'pipeline'
local list_weights = require('verbs.weights').list
local pth_writer = dofile(root .. '/tests/fixtures/pth_writer.lua')

local workdir, ncases, seed = arg[1], tonumber(arg[2]), tonumber(arg[3])
local seeds, only, model, model_file = {}, nil, nil, nil
local i = 4
while arg[i] do
  if arg[i] == '--only' then only = tonumber(arg[i + 1]); i = i + 2
  elseif arg[i] == '--model' then model, model_file = arg[i + 1], arg[i + 2]; i = i + 3
  else seeds[#seeds + 1] = arg[i]; i = i + 1 end
end
assert(workdir and ncases and seed and #seeds + (model_file and 1 or 0) > 0,
  'usage: mutate_weights.lua WORKDIR CASES SEED [--model SPEC FILE] SEEDFILE... [--only I]')

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

local SIZE = { F64 = 8, F32 = 4, F16 = 2, BF16 = 2 }

local function le(n, bytes)
  local t = {}
  for k = 1, bytes do
    t[k] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(t)
end

-- The float tensors' data in a safetensors file: { b, e (1-based, inclusive), dtype, var }.
local function safetensors_floats(s)
  local n = 0
  for k = 8, 1, -1 do n = n * 256 + s:byte(k) end
  local h = cjson.decode(s:sub(9, 8 + n))
  local regions = {}
  for name, e in pairs(h) do
    if name ~= '__metadata__' and SIZE[e.dtype] and e.data_offsets[2] > e.data_offsets[1] then
      regions[#regions + 1] = { b = 9 + n + e.data_offsets[1], e = 8 + n + e.data_offsets[2], dtype = e.dtype,
        var = name:match('running_var$') ~= nil }
    end
  end
  table.sort(regions, function(x, y) return x.b < y.b end)
  return regions
end

-- The storages of a checkpoint written by pth_writer from entries: in a legacy file each is
-- (u64 count, data) at the end, in order; in a zip, entry ARCHIVE/data/<i> (with its CRC-32's
-- positions in the local header and the central directory).
local function pth_floats(s, entries, format)
  local regions = {}
  if format == 'legacy' then
    local at = #s + 1
    for k = #entries, 1, -1 do at = at - #entries[k].data - 8 end
    for _, e in ipairs(entries) do
      regions[#regions + 1] = { b = at + 8, e = at + 7 + #e.data, dtype = e.dtype, var = e.name:match('running_var$') ~= nil }
      at = at + 8 + #e.data
    end
    return regions
  end
  local function u(at, n)
    local v = 0
    for k = n - 1, 0, -1 do v = v * 256 + s:byte(at + k) end
    return v
  end
  local central, cd = {}, u(#s - 5, 4) + 1 -- from the end-of-central-directory record
  while s:sub(cd, cd + 3) == 'PK\1\2' do
    local nlen = u(cd + 28, 2)
    central[s:sub(cd + 46, cd + 45 + nlen)] = { crc = cd + 16, lh = u(cd + 42, 4) + 1 }
    cd = cd + 46 + nlen + u(cd + 30, 2) + u(cd + 32, 2)
  end
  for k, e in ipairs(entries) do
    local c = central['archive/data/' .. (k - 1)]
    local b = c.lh + 30 + u(c.lh + 26, 2) + u(c.lh + 28, 2)
    regions[#regions + 1] = { b = b, e = b + #e.data - 1, dtype = e.dtype, var = e.name:match('running_var$') ~= nil,
      crc_at = { c.lh + 14, c.crc } }
  end
  return regions
end

local files = {}
for _, p in ipairs(seeds) do
  local s = slurp(p)
  local b, e = pickle_region(s)
  local ext = p:match('%.([%w_]+)$') or 'bin'
  files[#files + 1] = { path = p, bytes = s, pb = b, pe = e, ext = ext,
    floats = ext == 'safetensors' and safetensors_floats(s) or nil }
end
if model_file then
  local s = slurp(model_file)
  files[#files + 1] = { path = model_file, bytes = s, ext = 'safetensors', floats = safetensors_floats(s), model = true }
  -- the same weights as torch.save checkpoints, a few tensors in other float dtypes
  local w = weights.load(model_file)
  local entries = {}
  for _, name in ipairs(w.names) do
    local t = w.tensors[name]
    if t.data then
      local dtype = name:match('running_var$') and 'F64' or name == 'conv1.weight' and 'F16'
        or name:match('^fc%.') and 'BF16' or 'F32'
      entries[#entries + 1] = { name = name, dtype = dtype, shape = t.shape, data = pth_writer.raw(dtype, t.data, t.numel) }
    end
  end
  for _, format in ipairs({ 'zip', 'legacy' }) do
    local path = workdir .. '/seed.' .. format .. '.pth'
    local bytes = pth_writer.encode(entries, format)
    local pb, pe = pickle_region(bytes)
    files[#files + 1] = { path = path, bytes = bytes, pb = pb, pe = pe, ext = 'pth',
      floats = pth_floats(bytes, entries, format), model = true }
  end
end

local INTERESTING = { 0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x40, 0x2e, 0x28, 0x29, 0x4a, 0x8a, 0x71, 0x68, 0x52, 0x63 }

local rnd -- set per case

-- One hostile value of dtype, as its little-endian bytes: a NaN whose upper bits are a LuaJIT type
-- tag (any payload), another NaN, an infinity, a negative value where a variance is, or random bits.
local function hostile_value(dtype, var)
  local k = rnd(1, 6)
  if dtype == 'F64' then
    local hi, lo = rnd(0, 0xffffffff), rnd(0, 0xffffffff)
    if k <= 2 then hi = 0xfff80000 + rnd(0, 15) * 0x8000 + rnd(0, 0x7fff)
    elseif k == 3 then hi = 0x7ff00000 + rnd(1, 0xfffff)
    elseif k == 4 then hi, lo = rnd(0, 1) == 0 and 0x7ff00000 or 0xfff00000, 0
    elseif k == 5 and var then hi, lo = 0xbfe00000, 0 end
    return le(lo, 4) .. le(hi, 4)
  end
  local bits, exp, sign -- 32 or 16 bits: exponent mask and sign bit of the format
  if dtype == 'F32' then bits, exp, sign = 32, 0x7f800000, 0x80000000
  elseif dtype == 'BF16' then bits, exp, sign = 16, 0x7f80, 0x8000
  else bits, exp, sign = 16, 0x7c00, 0x8000 end
  local v = rnd(0, 2 ^ bits - 1)
  if k <= 2 then v = sign + exp + rnd(1, sign - exp - 1) -- negative NaNs: every tag, any payload
  elseif k == 3 then v = exp + rnd(1, sign - exp - 1)
  elseif k == 4 then v = exp + rnd(0, 1) * sign
  elseif k == 5 and var then v = sign + (dtype == 'F16' and 0x3800 or bit.rshift(0x3f000000, 32 - bits)) end
  return le(v, bits / 8)
end

local zlib
local function crc32(p, n)
  if not zlib then
    pcall(ffi.cdef, 'unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len);')
    zlib = ffi.load('libz.so.1') -- zlib1g (the unversioned libz.so is only in zlib1g-dev)
  end
  return tonumber(zlib.crc32(0, p, n))
end
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
  { 'float data', function(s, _, f) -- 1..4 hostile values in the float data (seeds with f.floats)
    local buf = ffi.new('uint8_t[?]', #s) -- edited in place: the seeds are large
    ffi.copy(buf, s, #s)
    for _ = 1, rnd(1, 4) do
      local r = f.floats[rnd(1, #f.floats)]
      local size = SIZE[r.dtype]
      local at = r.b + size * rnd(0, (r.e - r.b + 1) / size - 1)
      ffi.copy(buf + at - 1, hostile_value(r.dtype, r.var), size)
      if r.crc_at then
        local crc = le(crc32(buf + r.b - 1, r.e - r.b + 1), 4)
        for _, c in ipairs(r.crc_at) do ffi.copy(buf + c - 1, crc, 4) end
      end
    end
    return ffi.string(buf, #s)
  end },
}

local stats, failures = {}, 0
for _, m in ipairs(MUTATIONS) do stats[m[1]] = { n = 0, loaded = 0, refused = 0, failed = 0 } end

local function write(path, s)
  local f = assert(io.open(path, 'wb'))
  f:write(s)
  f:close()
end

-- Why error e (from reading or building path) is not a clean one-line error naming the file, or nil.
local function bad_error(e, path)
  if type(e) ~= 'string' then return 'non-string error (' .. type(e) .. ')' end
  if e:find('\n') then return 'multi-line error' end
  if e:sub(1, #path) ~= path or not e:sub(#path + 1, #path + 1):match('[: ]') then
    return 'error does not start with the file name'
  end
  if e:find('%.lua:%d+:') or e:find('attempt to ') or e:find('bad argument') or e:find('stack overflow') then
    return 'internal error'
  end
  return nil
end

-- fn(...) under pcall with print and io.stderr captured: ok, result, the lines written.
local function quietly(fn, ...)
  local lines, real_print, real_stderr = {}, _G.print, io.stderr
  _G.print = function(line) lines[#lines + 1] = line end
  io.stderr = { write = function(_, ...) lines[#lines + 1] = table.concat({ ... }):gsub('\n$', '') end }
  local ok, res = pcall(fn, ...)
  _G.print, io.stderr = real_print, real_stderr
  return ok, res, lines
end

-- Why the listing `foldc weights` prints for path (loaded as w) is wrong, or nil.
local function bad_listing(path, w)
  local ok, res, lines = quietly(list_weights, path, w)
  if not ok then return 'foldc weights failed: ' .. tostring(res) end
  for _, line in ipairs(lines) do
    if line:find('%c') then return 'foldc weights printed a control character: ' .. line:gsub('%c', '?') end
  end
  return nil
end

-- Why the front end (bind + passes) on path is wrong, or nil; built: whether it built.
local function bad_front_end(path, allow)
  bind.allow_nonfinite = allow
  -- interpreted: every run loads the description anew (zoo flushes the JIT for its sandbox), and
  -- compiling the passes' traces each time costs more than interpreting them
  jit.off()
  local ok, deploy = quietly(pipeline.deploy_graph, model, path)
  jit.on()
  bind.allow_nonfinite = false
  if not ok then return bad_error(deploy, path), false end
  for key, t in pairs(deploy.params) do
    for k = 0, t.numel - 1 do
      if type(t.data[k]) ~= 'number' then return 'the deploy graph holds a ' .. type(t.data[k]) .. ' in ' .. key end
    end
  end
  return nil, true
end

local t0 = os.clock()
local first, last = 1, ncases
if only then first, last = only, only end
local current = workdir .. '/current'
local with_floats, small = {}, {}
for _, f in ipairs(files) do
  if f.floats and #f.floats > 0 then with_floats[#with_floats + 1] = f end
  if not f.model then small[#small + 1] = f end
end
local front = { n = 0, built = 0, refused = 0, failed = 0, allowed = 0 }
for c = first, last do
  -- one RNG stream per case: LuaJIT's math.random is deterministic for a given seed
  math.randomseed(seed * 1000003 + c)
  rnd = math.random
  local f = files[rnd(1, #files)]
  local m = MUTATIONS[rnd(1, #MUTATIONS)]
  -- the model's seeds are large (time goes into copying them): 1 in 4 of their byte mutations
  if f.model and m[1] ~= 'float data' and rnd(1, 4) > 1 then f = small[rnd(1, #small)] end
  if not f.pb and (m[1] == 'pickle bytes' or m[1] == 'pickle ints') then m = MUTATIONS[1] end
  if m[1] == 'float data' and not (f.floats and #f.floats > 0) then f = with_floats[rnd(1, #with_floats)] end
  local other = files[rnd(1, #files)].bytes
  local mutated = m[2](f.bytes, other, f)
  local path = workdir .. '/case.' .. f.ext
  write(path, mutated)
  write(current, c .. ' ' .. m[1] .. ' of ' .. f.path .. '\n')
  local st = stats[m[1]]
  st.n = st.n + 1
  local c0 = os.clock()
  local ok, e = pcall(weights.load, path, { quiet = true })
  local why = (not ok) and bad_error(e, path) or nil
  if ok then why = bad_listing(path, e) end
  -- the front end takes ~80 ms: 3 in 4 hostile-float cases, 1 in 2 of the others
  if not why and ok and f.model and rnd(1, 4) <= (m[1] == 'float data' and 3 or 2) then
    local allow = rnd(0, 1) == 1
    local built
    front.n = front.n + 1
    why, built = bad_front_end(path, allow)
    if why then front.failed = front.failed + 1
    elseif built then front.built = front.built + 1; front.allowed = front.allowed + (allow and 1 or 0)
    else front.refused = front.refused + 1 end
  end
  local dt = os.clock() - c0
  if os.getenv("MUTATE_VERBOSE") then print(c, m[1], f.path:match("[^/]*$"), ok and "LOADED" or e) end
  if not why and dt > 2 then why = string.format('slow: %.1f s', dt) end
  if why then
    st.failed = st.failed + 1
    failures = failures + 1
    local keep = string.format('%s/fail-%d.%s', workdir, c, f.ext)
    write(keep, mutated)
    print(string.format('FAIL case %d (%s of %s): %s: %s [kept as %s]', c, m[1], f.path, why,
      ok and 'loaded' or tostring(e), keep))
  elseif ok then
    st.loaded = st.loaded + 1
  else
    st.refused = st.refused + 1
  end
  if c % 200 == 0 then collectgarbage() end
end
local total = last - first + 1
print(string.format('%d mutated files through the weights readers and `foldc weights` in %.1f s (seed %d, %d seed files):',
  total, os.clock() - t0, seed, #files))
for _, m in ipairs(MUTATIONS) do
  local st = stats[m[1]]
  print(string.format('  %-18s %6d cases: %6d loaded, %6d refused with a clean error, %d failed',
    m[1], st.n, st.loaded, st.refused, st.failed))
end
if model then
  print(string.format('  of those loaded from %s and its .pth: %d through the front end: %d built (%d with '
    .. '--allow-nonfinite), %d refused with a clean error, %d failed', model_file, front.n, front.built,
    front.allowed, front.refused, front.failed))
end
os.remove(current)
os.exit(failures == 0 and 0 or 1)
