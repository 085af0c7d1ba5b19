-- pth.lua: read PyTorch checkpoints (what torch.save writes) without PyTorch and without running
-- anything from the file.
--
-- Two container formats:
--   zip (PyTorch >= 1.6): ARCHIVE/data.pkl (the pickle) and ARCHIVE/data/<key> (raw storages,
--     STORED and 64-byte aligned); ARCHIVE is any single top folder name. Read with lua-zip;
--     every entry read is checked against the CRC-32 in the central directory (zlib's crc32).
--   legacy (PyTorch < 1.6, or _use_new_zipfile_serialization=False): five things back to back:
--     pickle(magic 0x1950a86a20f9469cfc6c), pickle(1001), pickle(sys_info), the main pickle,
--     pickle(sorted storage keys), then per key an int64 element count and the raw elements.
-- The pickles go through weights/unpickle.lua, which accepts only the globals a state_dict needs.
-- Persistent ids are ('storage', torch.<T>Storage, key, location, numel[, view_metadata]).
--
-- The tensors are found inside common wrappers ({'state_dict': ...}, {'model': ...}, ...), a
-- uniform 'module.' prefix (DataParallel) is stripped, and what was done is returned in `notes`.
-- Tensors are views (offset, size, stride) into storages that several tensors may share; float
-- tensors (F32/F16/BF16/F64) become float32 arrays, integer ones get data = nil (int_values for
-- one-element tensors), as in weights/safetensors.lua.
local ffi = require 'ffi'
local sys = require 'sys'
local unpickle = require 'weights.unpickle'
local safetensors = require 'weights.safetensors'
local tensor = require 'tensor'

local M = {}

local kind, NONE = unpickle.kind, unpickle.NONE
local LEGACY_MAGIC = '1950a86a20f9469cfc6c'
local FLOAT = { F32 = true, F16 = true, BF16 = true, F64 = true }
-- dict keys under which training scripts keep the weights, most specific first
M.WRAPPERS = { 'state_dict', 'model', 'model_ema', 'state_dict_ema', 'net', 'params', 'module', 'weights' }

local function fail(path, msg)
  -- keys and names come from the file: keep the message on one line
  error(path .. ': ' .. msg:gsub('%c', '?'), 0)
end

local function is_int(v) return type(v) == 'number' and v == math.floor(v) and v >= 0 and v < 2 ^ 53 end

-- Format of the file from its first bytes: 'zip', 'legacy', or nil and a reason.
function M.sniff(head)
  if head:sub(1, 4) == 'PK\3\4' then return 'zip' end
    -- a pickle (PROTO 2..5): the legacy format starts with the magic number's pickle
  if head:byte(1) == 0x80 and (head:byte(2) or 0) >= 2 and head:byte(2) <= 5 then return 'legacy' end
  if #head >= 262 and head:sub(258, 262) == 'ustar' then
    return nil, 'a tar checkpoint (PyTorch < 0.1.10), which is not supported'
  end
  return nil, 'not a PyTorch checkpoint (neither a zip archive nor the legacy torch.save format)'
end

-- Storage bookkeeping shared by both formats. roots[key] = {key, dtype, elsize, numel, ...};
-- persistent_load returns {py='storage', root=, base=, count=} (count elements from base).
local function storage_registry()
  local roots = {}
  local R = { roots = roots }
  function R.persistent_load(pid)
    if kind(pid) ~= 'tuple' or pid[1] ~= 'storage' or (pid.n ~= 5 and pid.n ~= 6) then
      error('persistent id is not (\'storage\', type, key, location, numel[, view])', 0)
    end
    local stype, key, numel = pid[2], pid[3], pid[5]
    if kind(stype) ~= 'global' or not stype.def.storage then
      error('persistent id storage type is a ' .. kind(stype) .. (stype.name and (' ' .. stype.name) or ''), 0)
    end
    if type(key) ~= 'string' and not is_int(key) then error('storage key is a ' .. kind(key), 0) end
    key = tostring(key)
    if not is_int(numel) then error("storage '" .. key .. "': numel " .. tostring(numel) .. ' is not an integer', 0) end
    local info = unpickle.STORAGE_TYPES[stype.def.storage]
    local root = roots[key]
    if not root then
      root = { key = key, dtype = info.dtype, elsize = info.size, numel = numel, type = stype.name }
      roots[key] = root
    elseif root.dtype ~= info.dtype or root.numel ~= numel then
      error(string.format("storage '%s' is referenced as %s of %.0f and as %s of %.0f", key,
        root.type, root.numel, stype.name, numel), 0)
    end
    local view = pid[6]
    if view == nil or view == NONE then
      return { py = 'storage', root = root, base = 0, count = numel }
    end
    -- legacy (PyTorch <= 0.3) storage view: (view_key, offset, size) into the root storage
    if kind(view) ~= 'tuple' or view.n ~= 3 or not is_int(view[2]) or not is_int(view[3]) then
      error("storage '" .. key .. "': view metadata is not (key, offset, size)", 0)
    end
    if view[2] + view[3] > numel then
      error(string.format("storage '%s': view [%.0f, +%.0f) exceeds its %.0f elements", key, view[2], view[3], numel), 0)
    end
    return { py = 'storage', root = root, base = view[2], count = view[3] }
  end
  return R
end

-- Value of a one-element integer/bool tensor at p.
local function int_at(dtype, p)
  if dtype == 'I64' then return tonumber(ffi.cast('const int64_t*', p)[0]) end
  if dtype == 'I32' then return tonumber(ffi.cast('const int32_t*', p)[0]) end
  if dtype == 'I16' then return tonumber(ffi.cast('const int16_t*', p)[0]) end
  if dtype == 'I8' then return tonumber(ffi.cast('const int8_t*', p)[0]) end
  return p[0] -- U8, BOOL
end

-- A loader tensor value from a {py='tensor'} descriptor. bytes_of(root) returns a uint8_t pointer
-- to the root storage's root.numel * root.elsize bytes (or raises).
local function materialize(path, name, t, bytes_of)
  local where = "tensor '" .. name .. "': "
  local st, size, stride = t.storage, t.size, t.stride
  local root = st.root
  local shape, numel = {}, 1
  for i = 1, size.n do
    shape[i] = size[i]
    numel = numel * size[i]
  end
  if numel >= 2 ^ 53 then fail(path, where .. 'shape ' .. table.concat(shape, 'x') .. ' overflows') end
  local last = t.offset -- index of the last element, relative to the storage (view) start
  for i = 1, size.n do
    if size[i] > 0 then last = last + (size[i] - 1) * stride[i] end
  end
  if numel > 0 and last >= st.count then
    fail(path, string.format("%sshape %s (offset %.0f, strides %s) needs %.0f elements of storage '%s', which has %.0f",
      where, tensor.shape_str(shape), t.offset, table.concat(stride, ','), last + 1, root.key, st.count))
  end
  -- overlapping views (zero strides, e.g. expand()) have more elements than their storage: allow
  -- that only up to a bound, so a corrupted stride cannot ask for terabytes
  if numel > st.count and numel > 2 ^ 24 then
    fail(path, string.format('%sshape %s has %.0f elements over a storage of %.0f (overlapping strides); refusing to expand',
      where, tensor.shape_str(shape), numel, st.count))
  end
  local out = { shape = shape, dtype = root.dtype, numel = numel }
  if numel == 0 then
    if FLOAT[root.dtype] then out.data = ffi.new('float[?]', 0) end
    return out
  end
  local ok, p = pcall(bytes_of, root)
  if not ok then fail(path, where .. tostring(p)) end
  p = p + (st.base + t.offset) * root.elsize
  if not FLOAT[root.dtype] then
    if numel == 1 then out.int_values = { int_at(root.dtype, p) } end
    return out
  end
  local contiguous, expect = true, 1
  for i = size.n, 1, -1 do
    if size[i] ~= 1 and stride[i] ~= expect then contiguous = false end
    expect = expect * size[i]
  end
  if contiguous then
    out.data = safetensors.to_float(root.dtype, p, numel)
    return out
  end
  -- a strided view: convert the span it touches, then gather in C order
  local span = safetensors.to_float(root.dtype, p, last - t.offset + 1)
  local data = ffi.new('float[?]', numel)
  local n = size.n
  local idx = {}
  for i = 1, n do idx[i] = 0 end
  local src = 0
  for j = 0, numel - 1 do
    data[j] = span[src]
    for d = n, 1, -1 do
      idx[d] = idx[d] + 1
      src = src + stride[d]
      if idx[d] < size[d] then break end
      src = src - size[d] * stride[d]
      idx[d] = 0
    end
  end
  out.data = data
  return out
end

-- A dict whose keys are strings and whose values are all tensors.
local function is_tensor_dict(v)
  if kind(v) ~= 'dict' or #v.keys == 0 then return false end
  for _, k in ipairs(v.keys) do
    if type(k) ~= 'string' or kind(v.map[k]) ~= 'tensor' then return false end
  end
  return true
end

local function key_list(d)
  local ks = {}
  for i, k in ipairs(d.keys) do
    if i > 12 then ks[#ks + 1] = '...'; break end
    ks[#ks + 1] = type(k) == 'string' and k or tostring(k)
  end
  return table.concat(ks, ', ')
end

-- The tensor dict inside the unpickled object: dict, where (nil or 'model' or 'model.state_dict').
local function find_state_dict(path, obj)
  if is_tensor_dict(obj) then return obj end
  if kind(obj) == 'tensor' then fail(path, 'the checkpoint is a single tensor, not a state_dict') end
  if kind(obj) ~= 'dict' then fail(path, 'the checkpoint is a ' .. kind(obj) .. ', not a dict of tensors') end
  local found, also = nil, {}
  for _, w in ipairs(M.WRAPPERS) do
    local v = obj.map[w]
    local hit, where
    if is_tensor_dict(v) then
      hit, where = v, w
    elseif kind(v) == 'dict' then
      for _, w2 in ipairs(M.WRAPPERS) do
        if is_tensor_dict(v.map[w2]) then hit, where = v.map[w2], w .. '.' .. w2; break end
      end
    end
    if hit then
      if found then also[#also + 1] = "'" .. where .. "'" else found = { hit, where } end
    end
  end
  if not found then
    if #obj.keys == 0 then fail(path, 'the checkpoint is an empty dict') end
    fail(path, 'no dict of tensors in the checkpoint (top-level keys: ' .. key_list(obj)
      .. '; looked for a dict of tensors, or one under ' .. table.concat(M.WRAPPERS, ', ') .. ')')
  end
  return found[1], found[2], also
end

-- names, tensors and notes from the unpickled object; bytes_of(root) gives a root's bytes.
local function collect(path, obj, bytes_of)
  local dict, where, also = find_state_dict(path, obj)
  local notes = {}
  if where then
    local note = "using '" .. where .. "' inside checkpoint"
    if #also > 0 then note = note .. ' (also has ' .. table.concat(also, ', ') .. ')' end
    notes[#notes + 1] = note
  end
  local strip = true
  for _, k in ipairs(dict.keys) do
    if k:sub(1, 7) ~= 'module.' then strip = false; break end
  end
  local names, tensors = {}, {}
  for i, k in ipairs(dict.keys) do
    local name = strip and k:sub(8) or k
    names[i] = name
    tensors[name] = materialize(path, k, dict.map[k], bytes_of)
  end
  if strip then notes[#notes + 1] = "stripped 'module.' from " .. #names .. ' keys' end
  return names, tensors, notes
end

local function read_file(path)
  local s, err = sys.read_bytes(path)
  if not s then fail(path, err) end
  return s
end

local function u64_at(s, pos)
  local v = 0
  for i = 7, 0, -1 do v = v * 256 + s:byte(pos + i) end
  return v
end

local function read_legacy(path, s)
  local function up(pos, what, opts)
    opts = opts or {}
    opts.name = what
    local ok, v, nxt = pcall(unpickle.load, s, pos, opts)
    if not ok then fail(path, tostring(v)) end
    return v, nxt
  end
  local magic, pos = up(1, 'magic-number pickle')
  if kind(magic) ~= 'long' or magic.hex ~= LEGACY_MAGIC then
    fail(path, 'bad magic number: not a legacy torch.save file')
  end
  local version
  version, pos = up(pos, 'protocol-version pickle')
  if version ~= 1001 then fail(path, 'unsupported legacy protocol version ' .. tostring(version) .. ' (expected 1001)') end
  local sys_info
  sys_info, pos = up(pos, 'sys-info pickle')
  if kind(sys_info) == 'dict' and sys_info.map.little_endian == false then
    fail(path, 'saved on a big-endian machine, which is not supported')
  end
  local reg = storage_registry()
  local obj
  obj, pos = up(pos, 'main pickle', { persistent_load = reg.persistent_load })
  local keys
  keys, pos = up(pos, 'storage-keys pickle')
  if kind(keys) ~= 'list' then fail(path, 'storage key list is a ' .. kind(keys) .. ', not a list') end
  for i = 1, keys.n do
    local key = keys[i]
    if type(key) ~= 'string' and not is_int(key) then fail(path, 'storage key ' .. i .. ' is a ' .. kind(key)) end
    key = tostring(key)
    local root = reg.roots[key]
    if not root then fail(path, "storage '" .. key .. "' is in the key list but no tensor uses it") end
    if root.pos then fail(path, "storage '" .. key .. "' is listed twice") end
    if pos + 7 > #s then
      fail(path, string.format("truncated: storage '%s' (%d of %d) starts at byte %d, past the end (%d bytes)",
        key, i, keys.n, pos - 1, #s))
    end
    local count = u64_at(s, pos)
    if count ~= root.numel then
      fail(path, string.format("storage '%s': file says %.0f elements, the pickle %.0f", key, count, root.numel))
    end
    local nbytes = count * root.elsize
    if pos + 8 + nbytes - 1 > #s then
      fail(path, string.format("truncated: storage '%s' needs %.0f bytes at byte %d, the file has %d",
        key, nbytes, pos + 7, #s - pos - 7))
    end
    root.pos = pos + 8
    pos = pos + 8 + nbytes
  end
  local base = ffi.cast('const uint8_t*', s)
  local function bytes_of(root)
    if not root.pos then error("storage '" .. root.key .. "' is missing from the file", 0) end
    return base + root.pos - 1
  end
  local names, tensors, notes = collect(path, obj, bytes_of)
  return { names = names, tensors = tensors, notes = notes, format = 'legacy' }
end

-- zlib's crc32 (zlib is already loaded by lua-zip's zziplib), for checking what zziplib returns.
local zlib
local function crc32(data)
  if not zlib then
    pcall(ffi.cdef, 'unsigned long crc32(unsigned long crc, const unsigned char *buf, unsigned int len);')
    zlib = ffi.load('z')
  end
  return tonumber(zlib.crc32(0, data, #data))
end

local function le(s, pos, n)
  local v = 0
  for i = n - 1, 0, -1 do v = v * 256 + (s:byte(pos + i) or 0) end
  return v
end

-- The CRC-32 of every entry, from the central directory (zziplib reads the entries but does not
-- check them; PyTorch does). Also the truncation check: a zip ends with its end-of-central-
-- directory record (22 bytes and a comment), and a download cut short inside that record would
-- otherwise still open.
local function zip_crcs(path)
  local f, oerr = io.open(path, 'rb')
  if not f then fail(path, 'cannot open: ' .. tostring(oerr)) end
  local function read_at(off, n)
    if off < 0 or not f:seek('set', off) then return '' end
    return f:read(n) or ''
  end
  local size = f:seek('end')
  local n = math.min(size, 22 + 65535)
  local tail = read_at(size - n, n)
  local eocd
  for pos = #tail - 21, 1, -1 do
    if tail:sub(pos, pos + 3) == 'PK\5\6' and pos + 21 + le(tail, pos + 20, 2) == #tail then
      eocd = size - n + pos - 1 -- file offset
      break
    end
  end
  if not eocd then
    f:close()
    fail(path, 'truncated or corrupted zip: no end-of-central-directory record at the end of the file')
  end
  local rec = read_at(eocd, 22)
  local count, cd_size, cd_off = le(rec, 11, 2), le(rec, 13, 4), le(rec, 17, 4)
  if cd_off == 0xffffffff or count == 0xffff or cd_size == 0xffffffff then -- zip64: PyTorch writes it
    local loc = read_at(eocd - 20, 20)
    local z64 = loc:sub(1, 4) == 'PK\6\7' and read_at(le(loc, 9, 8), 56) or ''
    if z64:sub(1, 4) ~= 'PK\6\6' then
      f:close()
      fail(path, 'corrupted zip: bad zip64 end-of-central-directory record')
    end
    count, cd_size, cd_off = le(z64, 33, 8), le(z64, 41, 8), le(z64, 49, 8)
  end
  local cd = (cd_size <= size and cd_off + cd_size <= size) and read_at(cd_off, cd_size) or ''
  f:close()
  if #cd ~= cd_size then fail(path, 'corrupted zip: central directory outside the file') end
  local crcs, pos = {}, 1
  for _ = 1, count do
    if cd:sub(pos, pos + 3) ~= 'PK\1\2' or pos + 45 > #cd then fail(path, 'corrupted zip central directory') end
    local nlen, xlen, clen = le(cd, pos + 28, 2), le(cd, pos + 30, 2), le(cd, pos + 32, 2)
    crcs[cd:sub(pos + 46, pos + 45 + nlen)] = le(cd, pos + 16, 4)
    pos = pos + 46 + nlen + xlen + clen
  end
  return crcs
end

local function read_zip(path)
  local zip = require 'zip'
  local crcs = zip_crcs(path)
  local z, zerr = zip.open(path)
  if not z then fail(path, 'cannot read zip archive (truncated or corrupted?): ' .. tostring(zerr)) end
  local ok, res = pcall(function()
    local entries, pkls = {}, {}
    for e in z:files() do
      local fname = e.filename
      if type(fname) ~= 'string' then error('zip entry without a name', 0) end
      entries[fname] = e
      if fname:match('^[^/]+/data%.pkl$') then pkls[#pkls + 1] = fname end
    end
    if #pkls ~= 1 then
      error(#pkls == 0 and 'zip archive has no ARCHIVE/data.pkl: not a torch.save checkpoint'
        or 'zip archive has ' .. #pkls .. ' data.pkl entries', 0)
    end
    local prefix = pkls[1]:sub(1, -9)
    local function read_entry(name, n)
      local e = entries[name]
      if not e then error("no entry '" .. name .. "' in the archive", 0) end
      if type(e.uncompressed_size) ~= 'number' or e.uncompressed_size < n then
        error(string.format("entry '%s' has %s bytes, %.0f needed", name, tostring(e.uncompressed_size), n), 0)
      end
      if n == 0 then return '' end
      local fh, ferr = z:open(name)
      if not fh then error("cannot open entry '" .. name .. "': " .. tostring(ferr), 0) end
      local rok, data = pcall(fh.read, fh, n)
      fh:close()
      if not rok or type(data) ~= 'string' or #data ~= n then
        error(string.format("entry '%s': read %s of %.0f bytes (truncated or corrupted?)", name,
          type(data) == 'string' and tostring(#data) or 'none', n), 0)
      end
      -- the CRC covers the whole entry; storages are read whole, so check when n is all of it
      if n == e.uncompressed_size and crcs[name] ~= crc32(data) then
        error(string.format("entry '%s': CRC-32 mismatch, the file is corrupted", name), 0)
      end
      return data
    end
    if entries[prefix .. 'byteorder'] then
      local bo = read_entry(prefix .. 'byteorder', entries[prefix .. 'byteorder'].uncompressed_size or 0)
      if bo ~= 'little' then error("byteorder is '" .. bo .. "', only little-endian is supported", 0) end
    end
    local pkl_entry = entries[pkls[1]]
    local pkl = read_entry(pkls[1], pkl_entry.uncompressed_size or 0)
    local reg = storage_registry()
    local uok, obj = pcall(unpickle.load, pkl, 1, { persistent_load = reg.persistent_load, name = pkls[1] })
    if not uok then error(tostring(obj), 0) end
    local cache = {}
    local function bytes_of(root)
      local data = cache[root.key]
      if not data then
        data = read_entry(prefix .. 'data/' .. root.key, root.numel * root.elsize)
        cache[root.key] = data
      end
      return ffi.cast('const uint8_t*', data)
    end
    local names, tensors, notes = collect(path, obj, bytes_of)
    return { names = names, tensors = tensors, notes = notes, format = 'zip' }
  end)
  z:close()
  if not ok then
    local msg = tostring(res)
    if msg:sub(1, #path + 2) == path .. ': ' then msg = msg:sub(#path + 3) end
    fail(path, msg)
  end
  return res
end

-- Returns { names = {...}, tensors = {[name] = tensor}, notes = {...}, format = 'zip'|'legacy' }.
function M.read(path)
  local f, oerr = io.open(path, 'rb')
  if not f then fail(path, 'cannot open: ' .. tostring(oerr)) end
  local head = f:read(512) or ''
  f:close()
  local fmt, why = M.sniff(head)
  if fmt == 'zip' then return read_zip(path) end
  if fmt == 'legacy' then return read_legacy(path, read_file(path)) end
  fail(path, why)
end

return M
