-- safetensors.lua: read/write the safetensors format.
-- Layout: u64 little-endian N, then N bytes of JSON header, then the data
-- section. The header maps tensor name -> {dtype, shape, data_offsets=[begin,end]}
-- (offsets relative to the data section start), plus an optional
-- "__metadata__" object of string -> string. Data is little-endian, C order.
-- Float dtypes (F32, F16, BF16, F64) are read into float32 ffi arrays; integer
-- and bool dtypes are validated but get data = nil (scalars get int_values).
-- Strict, as the reference implementation: no duplicate JSON keys at any level, tensor names
-- non-empty valid UTF-8 without control characters, and the tensors tile the data section
-- exactly (no gap, overlap or trailing byte).
-- Every float the compiler reads from a file goes through to_float or double_at here: they
-- replace every NaN by the canonical one, tested on the bits, because LuaJIT reads a NaN whose
-- upper bits match one of its type tags as a fake string/table/nil (a crash).
local ffi = require 'ffi'
local sys = require 'sys'
local bit = require 'bit'
local cjson = require 'cjson'
local tensor = require 'tensor'
local weights = require 'weights'

local M = {}
local printable = weights.printable

local MAX_HEADER = 100000000 -- same limit as the reference implementation

local DTYPE_SIZE = {
  F64 = 8, F32 = 4, F16 = 2, BF16 = 2,
  I64 = 8, I32 = 4, I16 = 2, I8 = 1,
  U64 = 8, U32 = 4, U16 = 2, U8 = 1, BOOL = 1,
}
local FLOAT_DTYPE = { F64 = true, F32 = true, F16 = true, BF16 = true }

assert(ffi.abi('le'), 'weights.safetensors: big-endian hosts are not supported')

local function fail(path, msg)
  -- names and dtypes come from the file: keep the message on one line
  error(path .. ': ' .. msg:gsub('%c', '?'), 0)
end

local function is_uint(v)
  return type(v) == 'number' and v >= 0 and v == math.floor(v) and v < 2 ^ 53
end

-- True if t is a Lua array (keys exactly 1..#t).
local function is_array(t)
  if type(t) ~= 'table' then return false end
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n == #t
end

-- F16 bit pattern -> float, built once on first use.
local f16_table
local function get_f16_table()
  if f16_table then return f16_table end
  f16_table = ffi.new('float[65536]')
  for h = 0, 65535 do
    local e = bit.band(bit.rshift(h, 10), 0x1f)
    local m = bit.band(h, 0x3ff)
    local v
    if e == 0 then
      v = m * 2 ^ -24
    elseif e == 31 then
      v = (m == 0) and math.huge or (0 / 0)
    else
      v = (1 + m / 1024) * 2 ^ (e - 15)
    end
    if h >= 0x8000 then v = -v end
    f16_table[h] = v
  end
  return f16_table
end

-- NaN bit patterns (exponent all ones, mantissa not zero) become the canonical quiet NaN, in
-- place, looking only at the integer view: n float32 at bits (int32_t*), or n doubles at
-- words (uint32_t*, low word first).
local function canonical_floats(bits, n)
  for i = 0, n - 1 do
    local b = bits[i]
    if bit.band(b, 0x7f800000) == 0x7f800000 and bit.band(b, 0x7fffff) ~= 0 then
      bits[i] = 0x7fc00000
    end
  end
end
local function canonical_doubles(words, n)
  for i = 0, n - 1 do
    local hi = words[2 * i + 1]
    if bit.band(hi, 0x7ff00000) == 0x7ff00000 and (bit.band(hi, 0xfffff) ~= 0 or words[2 * i] ~= 0) then
      words[2 * i], words[2 * i + 1] = 0, 0x7ff80000
    end
  end
end

-- Convert n elements of dtype at src (uint8_t*, any alignment) into a new float array, NaNs
-- canonical.
local function to_float(dtype, src, n)
  local out = ffi.new('float[?]', n)
  if dtype == 'F32' then
    ffi.copy(out, src, n * 4)
  elseif dtype == 'F64' then
    local tmp = ffi.new('double[?]', n) -- aligned copy; src may be unaligned
    ffi.copy(tmp, src, n * 8)
    canonical_doubles(ffi.cast('uint32_t*', tmp), n)
    for i = 0, n - 1 do out[i] = tmp[i] end
  elseif dtype == 'F16' then
    local tbl = get_f16_table()
    for i = 0, n - 1 do
      out[i] = tbl[src[2 * i] + src[2 * i + 1] * 256]
    end
  elseif dtype == 'BF16' then
    local bits = ffi.cast('int32_t*', out)
    for i = 0, n - 1 do
      bits[i] = bit.lshift(src[2 * i] + src[2 * i + 1] * 256, 16)
    end
  else
    error('weights.safetensors.to_float: not a float dtype: ' .. tostring(dtype))
  end
  canonical_floats(ffi.cast('int32_t*', out), n)
  return out
end

M.to_float = to_float -- shared with weights/pth.lua and weights/npy.lua

-- One little-endian double at p (8 bytes, any alignment) as a Lua number, NaN canonical
-- (for weights/unpickle.lua's BINFLOAT).
local one_double = ffi.new('double[1]')
function M.double_at(p)
  ffi.copy(one_double, p, 8)
  canonical_doubles(ffi.cast('uint32_t*', one_double), 1)
  return one_double[0]
end

-- The first key that appears twice in one object of the JSON text (valid JSON: cjson.decode took
-- it, keeping one of the two silently), and the key of the object holding it (nil at the top).
local function duplicate_key(text)
  local stack, pos = {}, 1
  while true do
    local p = text:find('[{}%[%]"]', pos)
    if not p then return nil end
    local c = text:sub(p, p)
    local top = stack[#stack]
    if c == '"' then
      local q = p + 1
      while true do
        q = text:find('["\\]', q)
        if text:sub(q, q) == '"' then break end
        q = q + 2
      end
      pos = q + 1
      if top and top.keys and text:find('^%s*:', pos) then
        local raw = text:sub(p + 1, q - 1)
        local key = raw:find('\\', 1, true) and cjson.decode('"' .. raw .. '"') or raw
        if top.keys[key] then return key, top.owner end
        top.keys[key], top.last = true, key
      end
    else
      if c == '{' or c == '[' then
        stack[#stack + 1] = { keys = c == '{' and {} or nil, owner = top and (top.last or top.owner) }
      else
        stack[#stack] = nil
      end
      pos = p + 1
    end
  end
end

-- Value of a one-element integer/bool tensor as a Lua number.
local function int_scalar(dtype, src)
  local size = DTYPE_SIZE[dtype]
  local u = 0
  for i = size - 1, 0, -1 do u = u * 256 + src[i] end
  if dtype:sub(1, 1) == 'I' and src[size - 1] >= 128 then
    u = u - 2 ^ (8 * size)
  end
  return u
end

-- Returns { names = {...}, tensors = {[name] = {...}}, metadata = table|nil }.
-- names are in data order (by data_offsets begin, then name).
function M.read(path)
  local s, err = sys.read_bytes(path)
  if not s then fail(path, err) end
  local size = #s
  if size < 8 then
    fail(path, 'too short for safetensors: ' .. size .. ' bytes, need at least 8')
  end
  local p = ffi.cast('const uint8_t*', s)

  local hlen = 0
  for i = 7, 0, -1 do hlen = hlen * 256 + p[i] end
  if hlen > MAX_HEADER then
    fail(path, string.format('header length %.0f is absurd (limit %d bytes)', hlen, MAX_HEADER))
  end
  if hlen > size - 8 then
    fail(path, string.format('header length %.0f exceeds file size %d', hlen, size))
  end

  local htext = s:sub(9, 8 + hlen)
  if not htext:match('^%s*{') then
    fail(path, 'header is not a JSON object')
  end
  local jok, header = pcall(cjson.decode, htext)
  if not jok then
    fail(path, 'header is not valid JSON: ' .. (tostring(header):gsub('\n', ' ')))
  end
  if type(header) ~= 'table' then fail(path, 'header is not a JSON object') end
  local dup, owner = duplicate_key(htext)
  if dup then
    fail(path, (owner and ("'" .. printable(owner) .. "': ") or '')
      .. "key '" .. printable(dup) .. "' appears twice in the JSON header")
  end

  local data_start = 8 + hlen
  local data_len = size - data_start
  local entries = {}
  local metadata
  for name, e in pairs(header) do
    local key = "tensor '" .. printable(name) .. "': "
    if name == '__metadata__' then
      if type(e) ~= 'table' or (next(e) ~= nil and is_array(e)) then
        fail(path, '__metadata__ is not an object')
      end
      for k, v in pairs(e) do
        if type(v) ~= 'string' then
          fail(path, "__metadata__ '" .. tostring(k) .. "' is not a string")
        end
      end
      metadata = e
    else
      local bad_name = weights.name_problem(name)
      if bad_name then fail(path, "tensor name '" .. printable(name) .. "' " .. bad_name) end
      if type(e) ~= 'table' then fail(path, key .. 'entry is not an object') end
      local dtype, shape, offs = e.dtype, e.shape, e.data_offsets
      if dtype == nil then fail(path, key .. 'missing dtype') end
      if shape == nil then fail(path, key .. 'missing shape') end
      if offs == nil then fail(path, key .. 'missing data_offsets') end
      if type(dtype) ~= 'string' or not DTYPE_SIZE[dtype] then
        fail(path, key .. 'unknown dtype ' .. tostring(dtype))
      end
      if not is_array(shape) then fail(path, key .. 'shape is not an array') end
      local numel = 1
      for i = 1, #shape do
        if not is_uint(shape[i]) then
          fail(path, key .. 'shape dim ' .. i .. ' is ' .. tostring(shape[i])
            .. ', not a non-negative integer')
        end
        numel = numel * shape[i]
      end
      if not is_array(offs) or #offs ~= 2 or not is_uint(offs[1]) or not is_uint(offs[2])
          or offs[1] > offs[2] then
        fail(path, key .. 'data_offsets is not [begin, end] with 0 <= begin <= end')
      end
      local b, en = offs[1], offs[2]
      local want = numel * DTYPE_SIZE[dtype]
      if en - b ~= want then
        fail(path, string.format('%swrong size: data_offsets [%.0f, %.0f] span %.0f bytes, '
          .. 'but %s %s needs %.0f', key, b, en, en - b, dtype,
          tensor.shape_str(shape), want))
      end
      entries[#entries + 1] = { name = name, dtype = dtype, shape = shape,
        numel = numel, b = b, e = en }
    end
  end

  table.sort(entries, function(x, y)
    if x.b ~= y.b then return x.b < y.b end
    if x.e ~= y.e then return x.e < y.e end
    return x.name < y.name
  end)

  local max_end, max_name = 0, nil
  for _, x in ipairs(entries) do
    if x.e > max_end then max_end, max_name = x.e, x.name end
  end
  if max_end > data_len then
    fail(path, string.format("truncated: header says %.0f bytes of data, file has %d "
      .. "(tensor '%s' ends at %.0f)", max_end, data_len, printable(max_name), max_end))
  end
  -- The tensors tile the data section: each starts where the one before ends, the first at 0,
  -- and the last ends with the file.
  local prev
  for _, cur in ipairs(entries) do
    local at = prev and prev.e or 0
    if cur.b < at then
      fail(path, string.format("tensor '%s': data_offsets [%.0f, %.0f] overlap tensor '%s' [%.0f, %.0f]",
        printable(cur.name), cur.b, cur.e, printable(prev.name), prev.b, prev.e))
    elseif cur.b > at then
      fail(path, string.format("tensor '%s': data_offsets [%.0f, %.0f] leave %.0f unused bytes before it",
        printable(cur.name), cur.b, cur.e, cur.b - at))
    end
    prev = cur
  end
  if max_end < data_len then
    fail(path, string.format('%d bytes after the last tensor%s (the data section has %d bytes)',
      data_len - max_end, max_name and string.format(" ('%s' ends at %.0f)", printable(max_name), max_end) or '',
      data_len))
  end

  local names, tensors = {}, {}
  for i, x in ipairs(entries) do
    names[i] = x.name
    local src = p + data_start + x.b
    local t = { shape = x.shape, dtype = x.dtype, numel = x.numel }
    if FLOAT_DTYPE[x.dtype] then
      t.data = to_float(x.dtype, src, x.numel)
    elseif x.numel == 1 then
      t.int_values = { int_scalar(x.dtype, src) }
    end
    tensors[x.name] = t
  end
  return { names = names, tensors = tensors, metadata = metadata }
end

local function u64_le(n)
  local bytes = {}
  for i = 1, 8 do
    local b = n % 256
    bytes[i] = string.char(b)
    n = (n - b) / 256
  end
  return table.concat(bytes)
end

local function json_int_list(t)
  local parts = {}
  for i = 1, #t do parts[i] = string.format('%.0f', t[i]) end
  return '[' .. table.concat(parts, ',') .. ']'
end

-- list: array of { name = string, tensor = float32 tensor }, written in order.
-- metadata: optional table of string -> string, stored as "__metadata__".
-- Writes path .. '.tmp' and renames it over path.
function M.write(path, list, metadata)
  local parts, seen, offset = {}, {}, 0
  if metadata ~= nil then
    local keys = {}
    for k, v in pairs(metadata) do
      if type(k) ~= 'string' or type(v) ~= 'string' then
        fail(path, 'metadata keys and values must be strings')
      end
      keys[#keys + 1] = k
    end
    table.sort(keys)
    local mp = {}
    for i, k in ipairs(keys) do
      mp[i] = cjson.encode(k) .. ':' .. cjson.encode(metadata[k])
    end
    parts[#parts + 1] = '"__metadata__":{' .. table.concat(mp, ',') .. '}'
  end
  for i, item in ipairs(list) do
    local name, t = item.name, item.tensor
    if type(name) ~= 'string' or name == '' or name == '__metadata__' then
      fail(path, 'entry ' .. i .. ': bad tensor name ' .. tostring(name))
    end
    if seen[name] then fail(path, "tensor '" .. name .. "': duplicate name") end
    seen[name] = true
    if type(t) ~= 'table' or t.data == nil or (t.dtype and t.dtype ~= 'F32') then
      fail(path, "tensor '" .. name .. "': not a float32 tensor with data")
    end
    local numel = 1
    for d = 1, #t.shape do numel = numel * t.shape[d] end
    if t.numel and t.numel ~= numel then
      fail(path, "tensor '" .. name .. "': numel " .. t.numel .. ' does not match shape')
    end
    local nbytes = numel * 4
    parts[#parts + 1] = string.format('%s:{"dtype":"F32","shape":%s,"data_offsets":[%.0f,%.0f]}',
      cjson.encode(name), json_int_list(t.shape), offset, offset + nbytes)
    offset = offset + nbytes
  end
  local header = '{' .. table.concat(parts, ',') .. '}'
  header = header .. string.rep(' ', (8 - #header % 8) % 8)

  local ok, err = sys.write_atomic(path, function(f)
    local wok, werr = f:write(u64_le(#header), header)
    for _, item in ipairs(list) do
      if not wok then break end
      local t = item.tensor
      local n = 1
      for d = 1, #t.shape do n = n * t.shape[d] end
      if n > 0 then wok, werr = f:write(ffi.string(t.data, n * 4)) end
    end
    return wok, werr
  end)
  if not ok then fail(path, err) end
end

return M
