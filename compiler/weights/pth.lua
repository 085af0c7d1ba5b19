-- pth.lua: read PyTorch checkpoints (what torch.save writes) without PyTorch, without running
-- anything from the file, and without letting the file make foldc allocate more than it holds.
--
-- Two container formats:
--   zip (PyTorch >= 1.6): ARCHIVE/data.pkl (the pickle) and ARCHIVE/data/<key> (raw storages,
--     STORED and 64-byte aligned by torch.save; DEFLATED ones, from re-packing, are read too);
--     ARCHIVE is any single top folder name. The archive is read from its central directory
--     (zip64 included); every entry read whole is checked against its CRC-32 (zlib's crc32).
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
--
-- Bounds, all checked from the pickle and the zip directory before any storage is read:
--   every view lies inside its storage, and every storage inside the file (a zip entry's declared
--     sizes and position, a legacy storage's element count);
--   --limit expansion: the float tensors take at most that many times the file's bytes as float32
--     (a file under 1 MiB counts as 1 MiB), so overlapping views (stride 0) cannot blow up;
--   --limit deflate_ratio: a deflated entry declares at most that many times its compressed size
--     (an entry under 16 KiB compressed counts as 16 KiB: a zeroed bias may deflate 100:1), and
--     inflating stops at the declared size (an entry holding more is refused).
-- Storages are read from the file into malloc'd buffers, each freed as soon as the tensors on it
-- are made: loading peaks near the float32 bytes of the tensors plus the largest storage.
local ffi = require 'ffi'
local bit = require 'bit'
local unpickle = require 'weights.unpickle'
local safetensors = require 'weights.safetensors'
local tensor = require 'tensor'
local limits = require 'limits'

local M = {}

local C = ffi.C
for _, decl in ipairs({
  'void *fopen(const char *path, const char *mode);',
  'int fclose(void *f);',
  'int fseeko(void *f, int64_t offset, int whence);',
  'size_t fread(void *buf, size_t size, size_t n, void *f);',
  'void *malloc(size_t n);',
  'void free(void *p);',
  [[typedef struct foldc_z_stream {
      const uint8_t *next_in; unsigned avail_in; unsigned long total_in;
      uint8_t *next_out; unsigned avail_out; unsigned long total_out;
      const char *msg; void *state; void *zalloc; void *zfree; void *opaque;
      int data_type; unsigned long adler; unsigned long reserved;
    } foldc_z_stream;]],
  'unsigned long crc32(unsigned long crc, const uint8_t *buf, unsigned len);',
  'const char *zlibVersion(void);',
  'int inflateInit2_(foldc_z_stream *strm, int window_bits, const char *version, int stream_size);',
  'int inflate(foldc_z_stream *strm, int flush);',
  'int inflateEnd(foldc_z_stream *strm);',
}) do pcall(ffi.cdef, decl) end

local kind, NONE = unpickle.kind, unpickle.NONE
local LEGACY_MAGIC = '1950a86a20f9469cfc6c'
local FLOAT = { F32 = true, F16 = true, BF16 = true, F64 = true }
local MIN_STORED = 2 ^ 20 -- bytes a file counts as, at least, for the expansion bound
local MIN_DEFLATED = 16 * 2 ^ 10 -- bytes a deflated entry counts as, at least, for deflate_ratio
local LEGACY_HEAD = 2 ^ 20 -- the legacy pickles are parsed from this much of the file first
local CHUNK = 2 ^ 30 -- zlib counts in 32 bits
-- dict keys under which training scripts keep the weights, most specific first
M.WRAPPERS = { 'state_dict', 'model', 'model_ema', 'state_dict_ema', 'net', 'params', 'module', 'weights' }

local function fail(path, msg)
  -- keys and names come from the file: keep the message on one line
  error(path .. ': ' .. msg:gsub('%c', '?'), 0)
end

local function is_int(v) return type(v) == 'number' and v == math.floor(v) and v >= 0 and v < 2 ^ 53 end

-- A malloc'd buffer of n bytes, freed by release() (or by the garbage collector after an error).
local function alloc(n)
  local p = C.malloc(math.max(n, 1))
  if p == nil then error(string.format('cannot allocate %.0f bytes', n), 0) end
  return ffi.gc(ffi.cast('uint8_t *', p), C.free)
end
local function release(p) C.free(ffi.gc(p, nil)) end

-- The checkpoint file, read at byte offsets (0-based) without ever holding all of it.
local function open_file(path, size)
  local fp = C.fopen(path, 'rb')
  if fp == nil then fail(path, 'cannot open') end
  fp = ffi.gc(fp, C.fclose)
  local F = { size = size }
  -- n bytes at off into buf; false if the file has fewer
  function F.read_into(buf, off, n)
    if n == 0 then return true end
    if off < 0 or off + n > size or C.fseeko(fp, off, 0) ~= 0 then return false end
    return C.fread(buf, 1, n, fp) == n
  end
  -- n bytes at off as a string, fewer at the end of the file
  function F.string(off, n)
    n = math.max(0, math.min(n, size - off))
    if n == 0 then return '' end
    local buf = alloc(n)
    local s = F.read_into(buf, off, n) and ffi.string(buf, n) or ''
    release(buf)
    return s
  end
  function F.close() C.fclose(ffi.gc(fp, nil)) end
  return F
end

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

-- The view a {py='tensor'} descriptor makes: its shape and element count, checked to lie inside
-- its storage. Reads nothing.
local function plan(path, name, t)
  local where = "tensor '" .. name .. "': "
  local st, size, stride = t.storage, t.size, t.stride
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
      where, tensor.shape_str(shape), t.offset, table.concat(stride, ','), last + 1, st.root.key, st.count))
  end
  local contiguous, expect = true, 1
  for i = size.n, 1, -1 do
    if size[i] ~= 1 and stride[i] ~= expect then contiguous = false end
    expect = expect * size[i]
  end
  return { where = where, t = t, root = st.root, shape = shape, numel = numel, last = last, contiguous = contiguous }
end

-- The loader tensor of plan p, from buf: its root storage's bytes (nil when p.numel is 0).
local function materialize(p, buf)
  local t, root, numel = p.t, p.root, p.numel
  local out = { shape = p.shape, dtype = root.dtype, numel = numel }
  if numel == 0 then
    if FLOAT[root.dtype] then out.data = ffi.new('float[?]', 0) end
    return out
  end
  local src = buf + (t.storage.base + t.offset) * root.elsize
  if not FLOAT[root.dtype] then
    if numel == 1 then out.int_values = { int_at(root.dtype, src) } end
    return out
  end
  if p.contiguous then
    out.data = safetensors.to_float(root.dtype, src, numel)
    return out
  end
  -- a strided view: convert the span it touches, then gather in C order
  local size, stride = t.size, t.stride
  local span = safetensors.to_float(root.dtype, src, p.last - t.offset + 1)
  local data = ffi.new('float[?]', numel)
  local n = size.n
  local idx = {}
  for i = 1, n do idx[i] = 0 end
  local at = 0
  for j = 0, numel - 1 do
    data[j] = span[at]
    for d = n, 1, -1 do
      idx[d] = idx[d] + 1
      at = at + stride[d]
      if idx[d] < size[d] then break end
      at = at - size[d] * stride[d]
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

-- names, tensors and notes from the unpickled object. Every tensor is planned first (views inside
-- their storages, store.check(root): the storage inside the file, and the expansion bound over
-- `stored` bytes); then store.read(root) gives each root storage's bytes, released once the last
-- tensor on it is made.
local function collect(path, obj, store, stored)
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
  local plans, users, floats = {}, {}, 0
  for i, k in ipairs(dict.keys) do
    local p = plan(path, k, dict.map[k])
    plans[i] = p
    if FLOAT[p.root.dtype] then
      floats = floats + 4 * p.numel
      local ok, err = pcall(limits.check, 'expansion', floats / math.max(stored, MIN_STORED), string.format(
        '%sshape %s: the float tensors up to it take %.0f bytes as float32, from a %.0f-byte file (counted as at least %.0f)',
        p.where, tensor.shape_str(p.shape), floats, stored, MIN_STORED))
      if not ok then fail(path, err) end
    end
    if p.numel > 0 then
      if not users[p.root] then
        local ok, err = pcall(store.check, p.root)
        if not ok then fail(path, p.where .. tostring(err)) end
      end
      users[p.root] = (users[p.root] or 0) + 1
    end
  end
  local names, tensors, bufs = {}, {}, {}
  for i, k in ipairs(dict.keys) do
    local p, root = plans[i], plans[i].root
    local name = strip and k:sub(8) or k
    names[i] = name
    if p.numel > 0 and not bufs[root] then
      local ok, buf = pcall(store.read, root)
      if not ok then fail(path, p.where .. tostring(buf)) end
      bufs[root] = buf
    end
    tensors[name] = materialize(p, bufs[root])
    if p.numel > 0 then
      users[root] = users[root] - 1
      if users[root] == 0 then
        release(bufs[root])
        bufs[root] = nil
      end
    end
  end
  if strip then notes[#notes + 1] = "stripped 'module.' from " .. #names .. ' keys' end
  return names, tensors, notes
end

local function u64_at(s, pos)
  local v = 0
  for i = 7, 0, -1 do v = v * 256 + s:byte(pos + i) end
  return v
end

-- The legacy file's pickles, from s (the file or its head): the main object, its storage
-- registry, the storage key list and the 0-based offset after it.
local function legacy_pickles(path, s)
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
  return obj, reg, keys, pos - 1
end

local function read_legacy(path, F)
  -- the pickles come first and are small (47 KB for resnet50): parse them from the head of the
  -- file, eight times longer each time they fail (they may run past it); the whole file's error
  -- is the one reported
  local obj, reg, keys, pos
  local len = LEGACY_HEAD
  while true do
    local head = F.string(0, len)
    local ok, err
    ok, err, reg, keys, pos = pcall(legacy_pickles, path, head)
    if ok then obj = err; break end
    if #head == F.size then error(err, 0) end
    len = len * 8
  end
  if kind(keys) ~= 'list' then fail(path, 'storage key list is a ' .. kind(keys) .. ', not a list') end
  for i = 1, keys.n do
    local key = keys[i]
    if type(key) ~= 'string' and not is_int(key) then fail(path, 'storage key ' .. i .. ' is a ' .. kind(key)) end
    key = tostring(key)
    local root = reg.roots[key]
    if not root then fail(path, "storage '" .. key .. "' is in the key list but no tensor uses it") end
    if root.off then fail(path, "storage '" .. key .. "' is listed twice") end
    local count = F.string(pos, 8)
    if #count < 8 then
      fail(path, string.format("truncated: storage '%s' (%d of %d) starts at byte %.0f, past the end (%.0f bytes)",
        key, i, keys.n, pos, F.size))
    end
    count = u64_at(count, 1)
    if count ~= root.numel then
      fail(path, string.format("storage '%s': file says %.0f elements, the pickle %.0f", key, count, root.numel))
    end
    local nbytes = count * root.elsize
    if pos + 8 + nbytes > F.size then
      fail(path, string.format("truncated: storage '%s' needs %.0f bytes at byte %.0f, the file has %.0f",
        key, nbytes, pos + 8, F.size - pos - 8))
    end
    root.off = pos + 8
    pos = pos + 8 + nbytes
  end
  local store = {}
  function store.check(root)
    if not root.off then error("storage '" .. root.key .. "' is missing from the file", 0) end
  end
  function store.read(root)
    local n = root.numel * root.elsize
    local buf = alloc(n)
    if not F.read_into(buf, root.off, n) then error("storage '" .. root.key .. "': cannot read the file", 0) end
    return buf
  end
  local names, tensors, notes = collect(path, obj, store, F.size)
  return { names = names, tensors = tensors, notes = notes, format = 'legacy' }
end

-- zlib, for crc32 and inflate
local zlib
local function libz()
  if not zlib then
    zlib = ffi.load('libz.so.1') -- zlib1g (the unversioned libz.so is only in zlib1g-dev)
  end
  return zlib
end

local function crc32(buf, n)
  local z, crc, done = libz(), 0, 0
  repeat
    local k = math.min(n - done, CHUNK)
    crc = z.crc32(crc, buf + done, k)
    done = done + k
  until done >= n
  return tonumber(crc)
end

local function le(s, pos, n)
  local v = 0
  for i = n - 1, 0, -1 do v = v * 256 + (s:byte(pos + i) or 0) end
  return v
end

-- The archive's entries from its central directory: name -> {name, flags, method, crc, csize,
-- usize, off (of the local header)}, and the names in directory order. A zip ends with its
-- end-of-central-directory record (22 bytes and a comment): a file cut short is refused here.
local function zip_entries(F)
  local size = F.size
  local n = math.min(size, 22 + 65535)
  local tail = F.string(size - n, n)
  local eocd
  for pos = #tail - 21, 1, -1 do
    if tail:sub(pos, pos + 3) == 'PK\5\6' and pos + 21 + le(tail, pos + 20, 2) == #tail then
      eocd = size - n + pos - 1 -- file offset
      break
    end
  end
  if not eocd then error('truncated or corrupted zip: no end-of-central-directory record at the end of the file', 0) end
  local rec = F.string(eocd, 22)
  local count, cd_size, cd_off = le(rec, 11, 2), le(rec, 13, 4), le(rec, 17, 4)
  if cd_off == 0xffffffff or count == 0xffff or cd_size == 0xffffffff then -- zip64: PyTorch writes it
    local loc = F.string(eocd - 20, 20)
    local z64 = loc:sub(1, 4) == 'PK\6\7' and F.string(le(loc, 9, 8), 56) or ''
    if z64:sub(1, 4) ~= 'PK\6\6' then error('corrupted zip: bad zip64 end-of-central-directory record', 0) end
    count, cd_size, cd_off = le(z64, 33, 8), le(z64, 41, 8), le(z64, 49, 8)
  end
  local cd = cd_off + cd_size <= size and F.string(cd_off, cd_size) or ''
  if #cd ~= cd_size then error('corrupted zip: central directory outside the file', 0) end
  local entries, order, pos = {}, {}, 1
  for _ = 1, count do
    local nlen, xlen, clen = le(cd, pos + 28, 2), le(cd, pos + 30, 2), le(cd, pos + 32, 2)
    if cd:sub(pos, pos + 3) ~= 'PK\1\2' or pos + 45 + nlen + xlen + clen > #cd then
      error('corrupted zip central directory', 0)
    end
    local e = { name = cd:sub(pos + 46, pos + 45 + nlen), flags = le(cd, pos + 8, 2), method = le(cd, pos + 10, 2),
      crc = le(cd, pos + 16, 4), csize = le(cd, pos + 20, 4), usize = le(cd, pos + 24, 4), off = le(cd, pos + 42, 4) }
    -- zip64: the sizes and offset that did not fit in 32 bits are in extra field 1, in this order
    if e.usize == 0xffffffff or e.csize == 0xffffffff or e.off == 0xffffffff then
      local x, xend, found = pos + 46 + nlen, pos + 45 + nlen + xlen, false
      while x + 3 <= xend and not found do
        local id, len = le(cd, x, 2), le(cd, x + 2, 2)
        if id == 1 then
          local q = x + 4
          for _, f in ipairs({ 'usize', 'csize', 'off' }) do
            if e[f] == 0xffffffff then e[f] = le(cd, q, 8); q = q + 8 end
          end
          found = q <= x + 4 + len and x + 3 + len <= xend
        end
        x = x + 4 + len
      end
      if not found then error("zip entry '" .. e.name .. "': its zip64 sizes are missing", 0) end
    end
    if entries[e.name] then error("zip archive has two entries named '" .. e.name .. "'", 0) end
    entries[e.name] = e
    order[#order + 1] = e.name
    pos = pos + 46 + nlen + xlen + clen
  end
  return entries, order
end

-- The file offset of entry e's data, once the first n bytes of it are known to be there: inside
-- the file, stored or deflated within the deflate_ratio bound, not encrypted. Reads 30 bytes.
local function locate(F, e, n)
  local what = "entry '" .. e.name .. "'"
  if e.usize < n then error(string.format('%s has %.0f bytes, %.0f needed', what, e.usize, n), 0) end
  if bit.band(e.flags, 1) ~= 0 then error(what .. ' is encrypted', 0) end
  local hdr = F.string(e.off, 30)
  if hdr:sub(1, 4) ~= 'PK\3\4' or #hdr < 30 then
    error(string.format('%s: no local header at byte %.0f (corrupted zip)', what, e.off), 0)
  end
  local data = e.off + 30 + le(hdr, 27, 2) + le(hdr, 29, 2)
  if data + e.csize > F.size then
    error(string.format('%s: %.0f bytes at byte %.0f run past the end of the %.0f-byte file (truncated?)',
      what, e.csize, data, F.size), 0)
  end
  if e.method == 0 then
    if e.csize ~= e.usize then
      error(string.format('%s is stored, yet declares %.0f bytes in %.0f', what, e.usize, e.csize), 0)
    end
  elseif e.method == 8 then
    limits.check('deflate_ratio', e.usize / math.max(e.csize, MIN_DEFLATED),
      string.format('%s: deflated, %.0f bytes declared to inflate to %.0f (counted as at least %.0f)',
        what, e.csize, e.usize, MIN_DEFLATED))
  else
    error(string.format('%s: compression method %d is not supported (only stored and deflated)', what, e.method), 0)
  end
  return data
end

-- Inflate entry e's deflate stream (at file offset data) into dst, n bytes; when n is the
-- declared size, the stream must end there.
local function inflate(F, e, data, dst, n)
  local z = libz()
  local src = alloc(e.csize)
  local zs = ffi.new('foldc_z_stream')
  local what = "entry '" .. e.name .. "'"
  if not F.read_into(src, data, e.csize) then error(what .. ': cannot read the file', 0) end
  if z.inflateInit2_(zs, -15, z.zlibVersion(), ffi.sizeof(zs)) ~= 0 then error(what .. ': zlib inflateInit failed', 0) end
  local fed = 0
  -- up to cap bytes into out: the count, whether the stream ended, zlib's error if it failed
  local function pump(out, cap)
    local got = 0
    while got < cap do
      if zs.avail_in == 0 and fed < e.csize then
        local k = math.min(e.csize - fed, CHUNK)
        zs.next_in, zs.avail_in, fed = src + fed, k, fed + k
      end
      local k = math.min(cap - got, CHUNK)
      zs.next_out, zs.avail_out = out + got, k
      local ret = z.inflate(zs, 0)
      got = got + k - zs.avail_out
      if ret == 1 then return got, true end
      if ret ~= 0 then return got, false, zs.msg ~= nil and ffi.string(zs.msg) or ('zlib error ' .. ret) end
    end
    return got, false
  end
  local got, ended, zerr = pump(dst, n)
  local more = 0
  if got == n and n == e.usize and not ended then
    more, ended, zerr = pump(ffi.new('uint8_t[1]'), 1)
  end
  z.inflateEnd(zs)
  release(src)
  if more > 0 then
    error(string.format('%s inflates to more than its declared %.0f bytes', what, e.usize), 0)
  end
  if got < n or (n == e.usize and not ended) then
    error(string.format('%s: the deflate stream is corrupted or cut short after %.0f of %.0f bytes (%s)',
      what, got, e.usize, zerr or 'no end'), 0)
  end
end

-- The first n bytes of entry e in a new buffer (checked against the CRC-32 when n is all of it).
local function read_entry(F, e, n)
  local data = locate(F, e, n)
  local buf = alloc(n)
  if e.method == 0 then
    if not F.read_into(buf, data, n) then error("entry '" .. e.name .. "': cannot read the file", 0) end
  else
    inflate(F, e, data, buf, n)
  end
  if n == e.usize and crc32(buf, n) ~= e.crc then
    error(string.format("entry '%s': CRC-32 mismatch, the file is corrupted", e.name), 0)
  end
  return buf
end

local function read_zip(path, F)
  local ok, res = pcall(function()
    local entries, order = zip_entries(F)
    local pkls = {}
    for _, name in ipairs(order) do
      if name:match('^[^/]+/data%.pkl$') then pkls[#pkls + 1] = name end
    end
    if #pkls ~= 1 then
      error(#pkls == 0 and 'zip archive has no ARCHIVE/data.pkl: not a torch.save checkpoint'
        or 'zip archive has ' .. #pkls .. ' data.pkl entries', 0)
    end
    local prefix = pkls[1]:sub(1, -9)
    local function whole(name) -- a whole entry as a string
      local e = entries[name]
      local buf = read_entry(F, e, e.usize)
      local s = ffi.string(buf, e.usize)
      release(buf)
      return s
    end
    if entries[prefix .. 'byteorder'] then
      local bo = whole(prefix .. 'byteorder')
      if bo ~= 'little' then error("byteorder is '" .. bo .. "', only little-endian is supported", 0) end
    end
    local pkl = whole(pkls[1])
    local reg = storage_registry()
    local uok, obj = pcall(unpickle.load, pkl, 1, { persistent_load = reg.persistent_load, name = pkls[1] })
    if not uok then error(tostring(obj), 0) end
    local store = {}
    local function entry(root)
      local e = entries[prefix .. 'data/' .. root.key]
      if not e then error("no entry '" .. prefix .. 'data/' .. root.key .. "' in the archive", 0) end
      return e
    end
    function store.check(root) locate(F, entry(root), root.numel * root.elsize) end
    function store.read(root) return read_entry(F, entry(root), root.numel * root.elsize) end
    local names, tensors, notes = collect(path, obj, store, F.size)
    return { names = names, tensors = tensors, notes = notes, format = 'zip' }
  end)
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
  local size = f:seek('end')
  f:close()
  local fmt, why = M.sniff(head)
  if not fmt then fail(path, why) end
  local F = open_file(path, size)
  local ok, res = pcall(fmt == 'zip' and read_zip or read_legacy, path, F)
  F.close()
  if not ok then error(res, 0) end
  return res
end

return M
