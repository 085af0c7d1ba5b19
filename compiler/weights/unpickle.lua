-- unpickle.lua: a safe, data-only unpickler for PyTorch checkpoints.
--
-- It understands the opcodes of pickle protocols 2 to 5 (the ones torch.save and Python 2/3 emit:
-- PyTorch's default is protocol 2) and builds plain Lua values. It never imports, calls or
-- executes anything from the file: the only globals it accepts are the handful a state_dict
-- needs, each implemented here in Lua:
--   collections.OrderedDict                          -> a dict
--   torch._utils._rebuild_tensor_v2 / _rebuild_tensor -> a tensor descriptor (storage, offset, size, stride)
--   torch._utils._rebuild_parameter(_with_state)      -> its tensor
--   torch.<T>Storage, torch.cuda.<T>Storage           -> storage type tags (not callable)
-- A GLOBAL / STACK_GLOBAL naming anything else is refused on the spot with the global's name, so
-- `os.system`, `builtins.eval`, `posix.system` and whole pickled nn.Modules fail before anything
-- is built. Protocol-0 text opcodes (other than GLOBAL) are not accepted either.
--
-- Values: Python int/float -> Lua number (ints too large for a double exactly -> a 'long' box;
-- floats through safetensors.double_at, so a NaN is the canonical one), str/bytes -> Lua string,
-- bool -> boolean, None -> M.NONE, and tables tagged by `py`:
--   {py='tuple'|'list', n=, [1..n]}, {py='dict', keys={...}, map={[k]=v}},
--   {py='global', name=}, {py='storage', ...from persistent_load}, {py='tensor', storage=,
--   offset=, size={py='tuple'}, stride={py='tuple'}}, {py='long', hex=} (big-endian hex).
-- Errors are raised as one-line strings (error(msg, 0)) giving the opcode's byte offset.
local ffi = require 'ffi'
local double_at = require('weights.safetensors').double_at

local M = {}

M.NONE = setmetatable({ py = 'none' }, { __tostring = function() return 'None' end })
local NONE = M.NONE

-- Storage type tags: PyTorch storage class name -> safetensors-style dtype and element size.
M.STORAGE_TYPES = {
  FloatStorage = { dtype = 'F32', size = 4 }, HalfStorage = { dtype = 'F16', size = 2 },
  BFloat16Storage = { dtype = 'BF16', size = 2 }, DoubleStorage = { dtype = 'F64', size = 8 },
  LongStorage = { dtype = 'I64', size = 8 }, IntStorage = { dtype = 'I32', size = 4 },
  ShortStorage = { dtype = 'I16', size = 2 }, CharStorage = { dtype = 'I8', size = 1 },
  ByteStorage = { dtype = 'U8', size = 1 }, BoolStorage = { dtype = 'BOOL', size = 1 },
}

local function fail(msg) error(msg, 0) end

local function tuple(...)
  local t = { py = 'tuple', ... }
  t.n = select('#', ...)
  return t
end
M.tuple = tuple

local function new_dict() return { py = 'dict', keys = {}, map = {} } end
M.new_dict = new_dict

local function kind(v)
  local ty = type(v)
  if ty == 'table' then return v.py or 'table' end
  if ty == 'string' then return 'str' end
  if ty == 'number' then return 'int/float' end
  return ty
end
M.kind = kind

local function is_int(v) return type(v) == 'number' and v == math.floor(v) and v > -2 ^ 53 and v < 2 ^ 53 end

-- Arguments of a REDUCE must be a tuple of exactly `lo`..`hi` elements.
local function args_of(name, args, lo, hi)
  if kind(args) ~= 'tuple' or args.n < lo or args.n > hi then
    fail(string.format('%s expects %d..%d arguments, got %s', name, lo, hi,
      kind(args) == 'tuple' and tostring(args.n) or kind(args)))
  end
  return args
end

local function int_tuple(name, what, v)
  if kind(v) ~= 'tuple' then fail(name .. ': ' .. what .. ' is a ' .. kind(v) .. ', not a tuple') end
  for i = 1, v.n do
    if not is_int(v[i]) or v[i] < 0 then
      fail(string.format('%s: %s[%d] is %s, not a non-negative integer', name, what, i, tostring(v[i])))
    end
  end
  return v
end

local function rebuild_tensor(name, args, lo, hi)
  args_of(name, args, lo, hi)
  local storage, offset, size, stride = args[1], args[2], args[3], args[4]
  if kind(storage) ~= 'storage' then fail(name .. ': first argument is a ' .. kind(storage) .. ', not a storage') end
  if not is_int(offset) or offset < 0 then fail(name .. ': storage offset ' .. tostring(offset) .. ' is not a non-negative integer') end
  int_tuple(name, 'size', size)
  int_tuple(name, 'stride', stride)
  if size.n ~= stride.n then fail(string.format('%s: size has %d dims, stride %d', name, size.n, stride.n)) end
  return { py = 'tensor', storage = storage, offset = offset, size = size, stride = stride }
end

local function tensor_arg(name, v)
  if kind(v) ~= 'tensor' then fail(name .. ': data is a ' .. kind(v) .. ', not a tensor') end
  return v
end

-- The allowed globals. call(args) implements REDUCE; new() implements NEWOBJ. A global without
-- either is a tag that may only be passed around (storage types).
local GLOBALS = {
  ['collections.OrderedDict'] = {
    call = function(args)
      args_of('OrderedDict', args, 0, 0)
      return new_dict()
    end,
    new = function() return new_dict() end,
  },
  ['torch._utils._rebuild_tensor_v2'] = {
    call = function(args) return rebuild_tensor('_rebuild_tensor_v2', args, 6, 7) end,
  },
  ['torch._utils._rebuild_tensor'] = { -- PyTorch <= 0.3
    call = function(args) return rebuild_tensor('_rebuild_tensor', args, 4, 4) end,
  },
  ['torch._utils._rebuild_parameter'] = {
    call = function(args) return tensor_arg('_rebuild_parameter', args_of('_rebuild_parameter', args, 3, 3)[1]) end,
  },
  ['torch._utils._rebuild_parameter_with_state'] = {
    call = function(args)
      return tensor_arg('_rebuild_parameter_with_state', args_of('_rebuild_parameter_with_state', args, 4, 4)[1])
    end,
  },
}
for tname in pairs(M.STORAGE_TYPES) do
  GLOBALS['torch.' .. tname] = { storage = tname }
  GLOBALS['torch.cuda.' .. tname] = { storage = tname }
end

-- The global `module.name`, or an error naming it when it is not allowed.
local function global(module, name)
  local full = module .. '.' .. name
  local g = GLOBALS[full]
  if not g then
    fail(string.format("refusing global '%s': not part of a state_dict (allowed: collections.OrderedDict, "
      .. 'torch._utils._rebuild_tensor*/_rebuild_parameter*, torch.*Storage); nothing from the file was run', full))
  end
  return { py = 'global', name = full, def = g }
end

-- Little-endian two's-complement integer of n bytes at s[pos..pos+n-1]: a number when exact,
-- else a {py='long'} box with the big-endian hex digits.
local function decode_long(s, pos, n)
  if n == 0 then return 0 end
  local neg = s:byte(pos + n - 1) >= 128
  -- drop sign-extension bytes from the top
  local m = n
  local fill = neg and 255 or 0
  while m > 1 and s:byte(pos + m - 1) == fill do m = m - 1 end
  if m <= 6 then
    local u = 0
    for i = m - 1, 0, -1 do u = u * 256 + s:byte(pos + i) end
    if neg then u = u - 256 ^ m end -- dropping 0xff fill bytes keeps u - 256^m exact
    return u
  end
  local hex = {}
  for i = n - 1, 0, -1 do hex[#hex + 1] = string.format('%02x', s:byte(pos + i)) end
  return { py = 'long', hex = table.concat(hex) }
end
M.decode_long = decode_long

local dbl_buf = ffi.new('uint8_t[8]')

-- opts: persistent_load = function(pid) -> value (required if the pickle has persistent ids),
--       name = what to call the pickle in errors (e.g. 'data.pkl').
-- Unpickles s starting at byte `pos` (1-based), stopping at byte `limit` (default #s).
-- Returns value, position after the STOP opcode.
function M.load(s, pos, opts)
  opts = opts or {}
  pos = pos or 1
  local limit = opts.limit or #s
  local stack, sp = {}, 0
  local marks, nmarks = {}, 0
  local memo = {}
  local at -- offset of the current opcode, for errors

  local function bad(msg)
    fail(string.format('%s at byte %d: bad pickle: %s', opts.name or 'pickle', at - 1, msg))
  end
  local function refuse(msg)
    fail(string.format('%s at byte %d: %s', opts.name or 'pickle', at - 1, msg))
  end
  local function need(n)
    if n < 0 or pos + n - 1 > limit then
      bad(string.format('needs %.0f more bytes, only %d left', n, limit - pos + 1))
    end
  end
  local function u8() need(1); local b = s:byte(pos); pos = pos + 1; return b end
  local function uint(n)
    need(n)
    local v = 0
    for i = n - 1, 0, -1 do v = v * 256 + s:byte(pos + i) end
    pos = pos + n
    return v
  end
  local function bytes(n)
    need(n)
    local v = s:sub(pos, pos + n - 1)
    pos = pos + n
    return v
  end
  local function line()
    local e = s:find('\n', pos, true)
    if not e or e > limit then bad('unterminated text argument') end
    local v = s:sub(pos, e - 1)
    pos = e + 1
    return v
  end
  local function push(v) sp = sp + 1; stack[sp] = v end
  local function pop()
    if sp <= (marks[nmarks] or 0) then bad('stack underflow') end
    local v = stack[sp]
    stack[sp] = nil
    sp = sp - 1
    return v
  end
  local function top()
    if sp <= (marks[nmarks] or 0) then bad('stack underflow') end
    return stack[sp]
  end
  -- Items above the last MARK, removed from the stack, as a Lua array (with n).
  local function pop_mark()
    if nmarks == 0 then bad('no MARK on the stack') end
    local m = marks[nmarks]
    marks[nmarks] = nil
    nmarks = nmarks - 1
    local items = { n = sp - m }
    for i = m + 1, sp do
      items[i - m] = stack[i]
      stack[i] = nil
    end
    sp = m
    return items
  end
  local function as_tuple(items)
    items.py = 'tuple'
    return items
  end
  local function hashable(k)
    local kk = kind(k)
    if kk == 'list' or kk == 'dict' then bad('unhashable dict key (' .. kk .. ')') end
    return k
  end
  local function setitem(d, k, v)
    if kind(d) ~= 'dict' then bad('SETITEM on a ' .. kind(d) .. ', not a dict') end
    hashable(k)
    if d.map[k] == nil then d.keys[#d.keys + 1] = k end
    d.map[k] = v
  end
  local function append(l, v)
    if kind(l) ~= 'list' then bad('APPEND on a ' .. kind(l) .. ', not a list') end
    l.n = l.n + 1
    l[l.n] = v
  end
  local function call(f, args)
    if kind(f) ~= 'global' then bad('REDUCE on a ' .. kind(f) .. ', not a global') end
    if not f.def.call then bad("'" .. f.name .. "' is not callable here") end
    local ok, v = pcall(f.def.call, args)
    if not ok then bad(tostring(v)) end
    return v
  end
  local function memo_get(i)
    local v = memo[i]
    if v == nil then bad('memo ' .. i .. ' is not set') end
    push(v)
  end
  local memo_n = 0
  local function memo_put(i)
    if memo[i] == nil then memo_n = memo_n + 1 end
    memo[i] = top()
  end

  local OPS = {
    [0x80] = function() -- PROTO
      local p = u8()
      if p > 5 then bad('unsupported pickle protocol ' .. p) end
    end,
    [0x95] = function() uint(8) end, -- FRAME: a hint only
    [0x28] = function() -- MARK
      nmarks = nmarks + 1
      marks[nmarks] = sp
    end,
    [0x30] = function() pop() end, -- POP
    [0x31] = function() pop_mark() end, -- POP_MARK
    [0x32] = function() push(top()) end, -- DUP
    [0x4e] = function() push(NONE) end, -- NONE
    [0x88] = function() push(true) end, -- NEWTRUE
    [0x89] = function() push(false) end, -- NEWFALSE
    [0x4a] = function() -- BININT: signed 32-bit
      local v = uint(4)
      if v >= 2 ^ 31 then v = v - 2 ^ 32 end
      push(v)
    end,
    [0x4b] = function() push(uint(1)) end, -- BININT1
    [0x4d] = function() push(uint(2)) end, -- BININT2
    [0x8a] = function() -- LONG1
      local n = u8()
      need(n)
      push(decode_long(s, pos, n))
      pos = pos + n
    end,
    [0x8b] = function() -- LONG4
      local n = uint(4)
      if n >= 2 ^ 31 then bad('negative LONG4 length') end
      need(n)
      push(decode_long(s, pos, n))
      pos = pos + n
    end,
    [0x47] = function() -- BINFLOAT: big-endian IEEE double
      need(8)
      for i = 0, 7 do dbl_buf[7 - i] = s:byte(pos + i) end
      pos = pos + 8
      push(double_at(dbl_buf))
    end,
    [0x58] = function() push(bytes(uint(4))) end, -- BINUNICODE
    [0x8c] = function() push(bytes(u8())) end, -- SHORT_BINUNICODE
    [0x8d] = function() push(bytes(uint(8))) end, -- BINUNICODE8
    [0x54] = function() -- BINSTRING (Python 2 str): signed 32-bit length
      local n = uint(4)
      if n >= 2 ^ 31 then bad('negative BINSTRING length') end
      push(bytes(n))
    end,
    [0x55] = function() push(bytes(u8())) end, -- SHORT_BINSTRING
    [0x42] = function() push(bytes(uint(4))) end, -- BINBYTES
    [0x43] = function() push(bytes(u8())) end, -- SHORT_BINBYTES
    [0x8e] = function() push(bytes(uint(8))) end, -- BINBYTES8
    [0x29] = function() push(tuple()) end, -- EMPTY_TUPLE
    [0x74] = function() push(as_tuple(pop_mark())) end, -- TUPLE
    [0x85] = function() local a = pop(); push(tuple(a)) end, -- TUPLE1
    [0x86] = function() local b = pop(); local a = pop(); push(tuple(a, b)) end, -- TUPLE2
    [0x87] = function() local c = pop(); local b = pop(); local a = pop(); push(tuple(a, b, c)) end, -- TUPLE3
    [0x5d] = function() push({ py = 'list', n = 0 }) end, -- EMPTY_LIST
    [0x6c] = function() local items = pop_mark(); items.py = 'list'; push(items) end, -- LIST
    [0x61] = function() local v = pop(); append(top(), v) end, -- APPEND
    [0x65] = function() -- APPENDS
      local items = pop_mark()
      local l = top()
      for i = 1, items.n do append(l, items[i]) end
    end,
    [0x7d] = function() push(new_dict()) end, -- EMPTY_DICT
    [0x64] = function() -- DICT
      local items = pop_mark()
      if items.n % 2 ~= 0 then bad('DICT with an odd number of items') end
      local d = new_dict()
      for i = 1, items.n, 2 do setitem(d, items[i], items[i + 1]) end
      push(d)
    end,
    [0x73] = function() local v = pop(); local k = pop(); setitem(top(), k, v) end, -- SETITEM
    [0x75] = function() -- SETITEMS
      local items = pop_mark()
      if items.n % 2 ~= 0 then bad('SETITEMS with an odd number of items') end
      local d = top()
      for i = 1, items.n, 2 do setitem(d, items[i], items[i + 1]) end
    end,
    [0x71] = function() memo_put(u8()) end, -- BINPUT
    [0x72] = function() memo_put(uint(4)) end, -- LONG_BINPUT
    [0x94] = function() memo_put(memo_n) end, -- MEMOIZE
    [0x68] = function() memo_get(u8()) end, -- BINGET
    [0x6a] = function() memo_get(uint(4)) end, -- LONG_BINGET
    [0x70] = function() -- PUT (text)
      local i = tonumber(line())
      if not i then bad('bad PUT index') end
      memo_put(i)
    end,
    [0x67] = function() -- GET (text)
      local i = tonumber(line())
      if not i then bad('bad GET index') end
      memo_get(i)
    end,
    [0x63] = function() -- GLOBAL: "module\nname\n"
      local module = line()
      local name = line()
      local ok, g = pcall(global, module, name)
      if not ok then refuse(g) end
      push(g)
    end,
    [0x93] = function() -- STACK_GLOBAL
      local name = pop()
      local module = pop()
      if type(module) ~= 'string' or type(name) ~= 'string' then bad('STACK_GLOBAL needs two strings') end
      local ok, g = pcall(global, module, name)
      if not ok then refuse(g) end
      push(g)
    end,
    [0x52] = function() -- REDUCE
      local args = pop()
      local f = pop()
      push(call(f, args))
    end,
    [0x81] = function() -- NEWOBJ
      local args = pop()
      local cls = pop()
      if kind(cls) ~= 'global' or not cls.def.new then
        bad('NEWOBJ of ' .. (kind(cls) == 'global' and cls.name or kind(cls)) .. ' is not supported')
      end
      if kind(args) ~= 'tuple' then bad('NEWOBJ arguments are not a tuple') end
      push(cls.def.new(args))
    end,
    [0x92] = function() -- NEWOBJ_EX
      pop() -- kwargs
      local args = pop()
      local cls = pop()
      if kind(cls) ~= 'global' or not cls.def.new then
        bad('NEWOBJ_EX of ' .. (kind(cls) == 'global' and cls.name or kind(cls)) .. ' is not supported')
      end
      if kind(args) ~= 'tuple' then bad('NEWOBJ_EX arguments are not a tuple') end
      push(cls.def.new(args))
    end,
    [0x62] = function() -- BUILD: only the attribute dict of an OrderedDict (state_dict._metadata)
      local state = pop()
      local obj = top()
      if kind(obj) ~= 'dict' then bad('BUILD on a ' .. kind(obj) .. ' is not supported') end
      local ks = kind(state)
      if ks ~= 'dict' and ks ~= 'none' and ks ~= 'tuple' then bad('BUILD with a ' .. ks .. ' state') end
      obj.attrs = state
    end,
    [0x51] = function() -- BINPERSID
      local pid = pop()
      if not opts.persistent_load then bad('persistent id in a pickle that must not have any') end
      local ok, v = pcall(opts.persistent_load, pid)
      if not ok then bad(tostring(v)) end
      if v == nil then bad('persistent id resolved to nothing') end
      push(v)
    end,
    [0x69] = function() -- INST: refuse by name
      local module = line()
      local name = line()
      local ok, g = pcall(global, module, name)
      if not ok then refuse(g) end
      bad("INST of '" .. g.name .. "' is not supported")
    end,
  }
  local NAMES = {
    [0x6f] = 'OBJ', [0x50] = 'PERSID', [0x49] = 'INT', [0x4c] = 'LONG', [0x46] = 'FLOAT',
    [0x53] = 'STRING', [0x56] = 'UNICODE', [0x82] = 'EXT1', [0x83] = 'EXT2', [0x84] = 'EXT4',
    [0x8f] = 'EMPTY_SET', [0x90] = 'ADDITEMS', [0x91] = 'FROZENSET', [0x96] = 'BYTEARRAY8',
    [0x97] = 'NEXT_BUFFER', [0x98] = 'READONLY_BUFFER',
  }

  while true do
    at = pos
    if pos > limit then
      at = limit + 1
      bad('ends without a STOP opcode')
    end
    local op = s:byte(pos)
    pos = pos + 1
    if op == 0x2e then -- STOP
      if sp ~= 1 or nmarks ~= 0 then bad('STOP with ' .. sp .. ' values on the stack') end
      return stack[1], pos
    end
    local f = OPS[op]
    if not f then
      if NAMES[op] then bad('unsupported opcode ' .. NAMES[op]) end
      bad(string.format('unknown opcode 0x%02x', op))
    end
    f()
  end
end

return M
