-- pth_spec.lua: the torch.save reader (compiler/weights/pth.lua) and its safe unpickler
-- (compiler/weights/unpickle.lua), on checkpoints written by torch.save itself
-- (tests/fixtures/pth/, made by make_pth_fixtures.py) and on pickles built byte by byte here.
local ffi = require 'ffi'
local weights = require 'weights.init'
local pth = require 'weights.pth'
local unpickle = require 'weights.unpickle'
local st = require 'weights.safetensors'

local root = os.getenv('FOLDC_ROOT') or '.'
local FIX = root .. '/tests/fixtures/pth/'

local tmpdir
local counter = 0
local function tmp_path(ext)
  counter = counter + 1
  return tmpdir .. '/p' .. counter .. (ext or '.pth')
end
local function put(path, bytes)
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
  return path
end
local function slurp(path)
  local f = assert(io.open(path, 'rb'))
  local s = f:read('*a')
  f:close()
  return s
end
local function exists(path)
  local f = io.open(path, 'rb')
  if f then f:close() end
  return f ~= nil
end

-- The error of fn(...): a one-line string containing every needle.
local function err_of(fn, ...)
  local args = { ... }
  return function(...)
    local ok, e = pcall(fn, unpack(args))
    assert.is_false(ok, 'expected an error')
    assert.is_string(e)
    assert.is_nil(e:find('\n'), 'multi-line error: ' .. e)
    for _, needle in ipairs({ ... }) do
      assert.truthy(e:find(needle, 1, true), 'missing "' .. needle .. '" in: ' .. e)
    end
    return e
  end
end

---------------------------------------------------------------------------------------------------
-- A tiny pickle writer for hand-made checkpoints (protocol 2, what torch.save emits).
local P = {}
local function le(n, bytes)
  local t = {}
  for i = 1, bytes do
    t[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(t)
end
function P.str(s) return 'X' .. le(#s, 4) .. s end
function P.int(n)
  if n >= 0 and n < 256 then return 'K' .. string.char(n) end
  if n >= 0 and n < 2 ^ 31 then return 'J' .. le(n, 4) end
  return '\138\8' .. le(n, 8) -- LONG1, non-negative
end
function P.tuple(...) return '(' .. table.concat({ ... }) .. 't' end
function P.global(m, n) return 'c' .. m .. '\n' .. n .. '\n' end
function P.storage(key, numel, stype, view)
  local module, name = (stype or 'torch.FloatStorage'):match('^(.*)%.([^.]*)$')
  return P.tuple(P.str('storage'), P.global(module, name), P.str(key), P.str('cpu'), P.int(numel), view) .. 'Q'
end
-- PyTorch <= 0.3: _rebuild_tensor(storage, offset, size, stride), no requires_grad / hooks
function P.tensor_v1(storage, offset, size, stride)
  local sz, sd = {}, {}
  for i = 1, #size do sz[i] = P.int(size[i]) end
  for i = 1, #stride do sd[i] = P.int(stride[i]) end
  return P.global('torch._utils', '_rebuild_tensor') .. '(' .. storage .. P.int(offset)
    .. P.tuple(unpack(sz)) .. P.tuple(unpack(sd)) .. 'tR'
end
function P.tensor(storage, offset, size, stride)
  local sz, sd = {}, {}
  for i = 1, #size do sz[i] = P.int(size[i]) end
  for i = 1, #stride do sd[i] = P.int(stride[i]) end
  return P.global('torch._utils', '_rebuild_tensor_v2') .. '(' .. storage .. P.int(offset)
    .. P.tuple(unpack(sz)) .. P.tuple(unpack(sd)) .. '\137' .. P.global('collections', 'OrderedDict') .. ')Rt' .. 'R'
end
function P.dict(pairs_)
  local parts = { '}(' }
  for _, kv in ipairs(pairs_) do parts[#parts + 1] = P.str(kv[1]) .. kv[2] end
  parts[#parts + 1] = 'u'
  return table.concat(parts)
end
function P.pickle(body) return '\128\2' .. body .. '.' end

-- A legacy-format checkpoint: {name: tensor} over one float storage '0' of `numel` values.
local function legacy(tensors, numel, opts)
  opts = opts or {}
  local magic = '\128\2\138\10' .. '\108\252\156\70\249\32\106\168\80\25' .. '.'
  local parts = { magic, P.pickle(P.int(1001)), P.pickle(P.dict({ { 'little_endian', '\136' } })) }
  local items = {}
  for _, t in ipairs(tensors) do
    items[#items + 1] = { t[1], P.tensor(P.storage('0', opts.pid_numel or numel), t[2], t[3], t[4]) }
  end
  parts[#parts + 1] = P.pickle(P.dict(items))
  parts[#parts + 1] = P.pickle(']' .. '(' .. P.str('0') .. 'e')
  local data = ffi.new('float[?]', numel)
  for i = 0, numel - 1 do data[i] = i + 0.5 end
  parts[#parts + 1] = le(opts.count or numel, 8) .. ffi.string(data, 4 * numel)
  return table.concat(parts)
end

describe('weights.pth', function()
  setup(function()
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    assert(os.execute('mkdir -p ' .. tmpdir) == 0)
  end)
  teardown(function() os.execute('rm -rf ' .. tmpdir) end)

  for _, fmt in ipairs({ 'zip', 'legacy' }) do
    it('reads every dtype, views, strides and shared storages (' .. fmt .. ')', function()
      local path = FIX .. 'small.' .. fmt .. '.pth'
      local w = weights.load(path)
      local want = st.read(FIX .. 'small.expect.safetensors')
      assert.equal(fmt, w.format)
      assert.same({ 'conv.weight', 'conv.bias', 'bn.weight', 'bn.running_var', 'bn.num_batches_tracked',
        'shared.full', 'shared.window', 'shared.transposed', 'half.weight', 'bf16.weight', 'ints.i32',
        'ints.u8', 'ints.bool', 'scalar', 'empty', 'strided.every_other' }, w.names)
      for _, name in ipairs(want.names) do
        local a, b = w.tensors[name], want.tensors[name]
        assert.same(b.shape, a.shape, name)
        assert.equal(b.numel, a.numel, name)
        assert.is_true(ffi.string(a.data, 4 * b.numel) == ffi.string(b.data, 4 * b.numel), name .. ' differs')
      end
      local dt = {}
      for _, name in ipairs(w.names) do dt[name] = w.tensors[name].dtype end
      assert.same({ ['conv.weight'] = 'F32', ['conv.bias'] = 'F32', ['bn.weight'] = 'F32', ['bn.running_var'] = 'F64',
        ['bn.num_batches_tracked'] = 'I64', ['shared.full'] = 'F32', ['shared.window'] = 'F32',
        ['shared.transposed'] = 'F32', ['half.weight'] = 'F16', ['bf16.weight'] = 'BF16', ['ints.i32'] = 'I32',
        ['ints.u8'] = 'U8', ['ints.bool'] = 'BOOL', scalar = 'F32', empty = 'F32', ['strided.every_other'] = 'F32' }, dt)
      assert.same({ 12345678901 }, w.tensors['bn.num_batches_tracked'].int_values)
      assert.same({}, w.tensors['bn.num_batches_tracked'].shape)
      assert.is_nil(w.tensors['bn.num_batches_tracked'].data)
      assert.same({ 200 }, w.tensors['ints.u8'].int_values)
      assert.same({ 1 }, w.tensors['ints.bool'].int_values)
      assert.same({ 2 }, w.tensors['ints.i32'].shape)
      assert.same({ 0, 5 }, w.tensors.empty.shape)
      -- values the fixture script set by construction
      assert.equal(-2.5, w.tensors['shared.window'].data[0]) -- arange(30) - 7.5, offset 5
      assert.equal(-5.5, w.tensors['shared.transposed'].data[0])
      assert.equal(-1.5, w.tensors['shared.transposed'].data[1]) -- stride 4 along the second dim
      assert.equal(2, w.tensors['strided.every_other'].data[1])
    end)
  end

  it('finds the state_dict inside a wrapper and strips module.', function()
    local w = pth.read(FIX .. 'wrapped.pth')
    assert.same({ 'conv.weight', 'conv.bias', 'bn.num_batches_tracked' }, w.names)
    assert.same({ "using 'model' inside checkpoint", "stripped 'module.' from 3 keys" }, w.notes)
    local plain = pth.read(FIX .. 'small.zip.pth')
    assert.same({}, plain.notes)
    assert.is_true(ffi.string(plain.tensors['conv.weight'].data, 4 * 108) == ffi.string(w.tensors['conv.weight'].data, 4 * 108))
  end)

  local EVIL = {
    { 'evil_os_system.pth', 'os.system', 'os_system' },
    { 'evil_eval.pth', '__builtin__.eval', 'eval' },
    { 'evil_builtins_eval.pth', 'builtins.eval', 'builtins_eval' },
    { 'evil_posix.pth', 'posix.system', 'posix' },
    { 'evil_nested.pth', 'posix.system', 'nested' },
  }
  for _, case in ipairs(EVIL) do
    it('refuses ' .. case[2] .. ' and runs nothing (' .. case[1] .. ')', function()
      local marker = '/tmp/foldc-pwned-' .. case[3]
      os.remove(marker)
      local path = FIX .. case[1]
      err_of(weights.load, path)(path .. ': ', "refusing global '" .. case[2] .. "'", 'nothing from the file was run')
      assert.is_false(exists(marker), 'the payload ran: ' .. marker .. ' exists')
    end)
  end

  it('refuses a pickled nn.Module by its class name', function()
    local path = FIX .. 'whole_module.pth'
    err_of(pth.read, path)(path .. ': ', "refusing global 'torch.nn.modules.container.Sequential'")
  end)

  it('reads a hand-made legacy checkpoint, views included', function()
    local path = put(tmp_path(), legacy({ { 'a', 0, { 2, 2 }, { 2, 1 } }, { 'b', 1, { 2 }, { 2 } } }, 4))
    local w = pth.read(path)
    assert.same({ 'a', 'b' }, w.names)
    assert.same({ 0.5, 1.5, 2.5, 3.5 }, { w.tensors.a.data[0], w.tensors.a.data[1], w.tensors.a.data[2], w.tensors.a.data[3] })
    assert.same({ 1.5, 3.5 }, { w.tensors.b.data[0], w.tensors.b.data[1] })
  end)

  it('reads a PyTorch 0.3-style legacy file: _rebuild_tensor, cuda storages, storage views', function()
    local magic = '\128\2\138\10' .. '\108\252\156\70\249\32\106\168\80\25' .. '.'
    local view = P.tuple(P.str('v1'), P.int(2), P.int(3)) -- elements 2..4 of root storage '7'
    local body = P.dict({
      { 'a', P.tensor_v1(P.storage('7', 6, 'torch.cuda.FloatStorage'), 1, { 2, 2 }, { 1, 2 }) },
      { 'b', P.tensor_v1(P.storage('7', 6, 'torch.cuda.FloatStorage', view), 1, { 2 }, { 1 }) },
    })
    local data = ffi.new('float[6]', { 0, 10, 20, 30, 40, 50 })
    local path = put(tmp_path(), magic .. P.pickle(P.int(1001)) .. P.pickle('}') .. P.pickle(body)
      .. P.pickle('](' .. P.str('7') .. 'e') .. le(6, 8) .. ffi.string(data, 24))
    local w = pth.read(path)
    assert.same({ 2, 2 }, w.tensors.a.shape)
    assert.same({ 10, 30, 20, 40 }, { w.tensors.a.data[0], w.tensors.a.data[1], w.tensors.a.data[2], w.tensors.a.data[3] })
    assert.same({ 30, 40 }, { w.tensors.b.data[0], w.tensors.b.data[1] })
    -- a view past its root storage is refused
    local bad = body:gsub(P.int(3) .. 't', P.int(5) .. 't', 1)
    path = put(tmp_path(), magic .. P.pickle(P.int(1001)) .. P.pickle('}') .. P.pickle(bad)
      .. P.pickle('](' .. P.str('7') .. 'e') .. le(6, 8) .. ffi.string(data, 24))
    err_of(pth.read, path)(path .. ': ', "storage '7': view [2, +5) exceeds its 6 elements")
  end)

  it('refuses a tensor larger than its storage, naming file and key', function()
    local path = put(tmp_path(), legacy({ { 'w', 0, { 2, 3 }, { 3, 1 } } }, 4))
    err_of(pth.read, path)(path .. ': ', "tensor 'w'", 'needs 6 elements', 'which has 4')
    path = put(tmp_path(), legacy({ { 'w', 3, { 2 }, { 1 } } }, 4))
    err_of(pth.read, path)("tensor 'w'", 'needs 5 elements')
  end)

  it('refuses shapes that overflow and absurd broadcasts', function()
    local path = put(tmp_path(), legacy({ { 'w', 0, { 2 ^ 40, 2 ^ 40 }, { 0, 0 } } }, 4))
    err_of(pth.read, path)(path .. ': ', "tensor 'w'", 'overflows')
    path = put(tmp_path(), legacy({ { 'w', 0, { 2 ^ 30 }, { 0 } } }, 4))
    err_of(pth.read, path)("tensor 'w'", 'over the limit expansion=8')
  end)

  it('refuses truncated and inconsistent legacy storages', function()
    local good = legacy({ { 'w', 0, { 4 }, { 1 } } }, 4)
    local path = put(tmp_path(), good:sub(1, #good - 3))
    err_of(pth.read, path)(path .. ': ', 'truncated', "storage '0'")
    path = put(tmp_path(), legacy({ { 'w', 0, { 4 }, { 1 } } }, 4, { count = 5 }))
    err_of(pth.read, path)("storage '0': file says 5 elements, the pickle 4")
  end)

  it('refuses a truncated zip checkpoint', function()
    local s = slurp(FIX .. 'small.zip.pth')
    for _, n in ipairs({ 0, 10, math.floor(#s / 2), #s - 30, #s - 1 }) do
      local path = put(tmp_path(), s:sub(1, n))
      local ok, e = pcall(weights.load, path)
      assert.is_false(ok, 'loaded a zip cut at ' .. n)
      assert.equal(path .. ': ', e:sub(1, #path + 2))
    end
  end)

  it('checks the CRC-32 of what it reads from a zip', function()
    local s = slurp(FIX .. 'small.zip.pth')
    local name = s:find('small.zip/data/0', 1, true) -- first hit: the local header's copy
    local hdr = name - 30
    assert.equal('PK\3\4', s:sub(hdr, hdr + 3))
    local payload = name + 16 + s:byte(hdr + 28) + 256 * s:byte(hdr + 29)
    local bad = s:sub(1, payload + 2) .. string.char(bit.bxor(s:byte(payload + 3), 16)) .. s:sub(payload + 4)
    local path = put(tmp_path(), bad)
    err_of(pth.read, path)(path .. ": tensor 'conv.weight': entry 'small.zip/data/0': CRC-32 mismatch")
  end)

  it('says what it looked for in a dict without tensors', function()
    local magic = '\128\2\138\10' .. '\108\252\156\70\249\32\106\168\80\25' .. '.'
    local path = put(tmp_path(), magic .. P.pickle(P.int(1001)) .. P.pickle('}') ..
      P.pickle(P.dict({ { 'epoch', P.int(3) }, { 'model', P.dict({ { 'x', P.int(1) } }) } })) .. P.pickle(']'))
    err_of(pth.read, path)(path .. ': no dict of tensors in the checkpoint (top-level keys: epoch, model;',
      'state_dict, model')
  end)
end)

-- Memory bombs: every bound is checked from the pickle before anything is allocated, and the
-- refusal names the file, the tensor and the bound (zip entries: tests/e2e/pth_errors.sh).
describe('weights.pth bounds', function()
  local limits = require 'limits'
  setup(function()
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    assert(os.execute('mkdir -p ' .. tmpdir) == 0)
  end)
  teardown(function() os.execute('rm -rf ' .. tmpdir) end)

  -- the error of pth.read(path), which must come within a second
  local function refused(path, ...)
    local t0 = os.clock()
    local e = err_of(pth.read, path)(path .. ': ', ...)
    assert.is_true(os.clock() - t0 < 1, 'took ' .. (os.clock() - t0) .. ' s: ' .. e)
    return e
  end

  it('refuses a stride-0 view that expands past the bound, before allocating it', function()
    local path = put(tmp_path(), legacy({ { 'w', 0, { 2 ^ 15, 2 ^ 15 }, { 0, 0 } } }, 1))
    refused(path, "tensor 'w': shape 32768x32768:", '4294967296 bytes as float32', 'over the limit expansion=8',
      '--limit expansion=N')
  end)

  it('adds up the float tensors, naming the one that crosses the bound', function()
    local path = put(tmp_path(), legacy({ { 'a', 0, { 2 ^ 20 }, { 0 } }, { 'b', 0, { 2 ^ 20 }, { 0 } },
      { 'c', 0, { 2 ^ 20 }, { 0 } } }, 1))
    local e = refused(path, "tensor 'c'", '12582912 bytes as float32', 'over the limit expansion=8')
    assert.is_nil(e:find("tensor 'b'", 1, true))
  end)

  it('lets a legitimate expanded view through with --limit expansion', function()
    local path = put(tmp_path(), legacy({ { 'w', 0, { 2 ^ 22 }, { 0 } } }, 1))
    refused(path, "tensor 'w'", 'needs 16, over the limit expansion=8')
    local default = limits.get('expansion')
    finally(function() limits.set('expansion=' .. default) end)
    limits.set('expansion=20')
    local w = pth.read(path)
    assert.same({ 2 ^ 22 }, w.tensors.w.shape)
    assert.equal(0.5, w.tensors.w.data[2 ^ 22 - 1])
  end)

  it('refuses a shape over a tiny storage', function()
    local path = put(tmp_path(), legacy({ { 'w', 0, { 2 ^ 20, 2 ^ 20 }, { 2 ^ 20, 1 } } }, 4))
    refused(path, "tensor 'w': shape 1048576x1048576", 'needs 1099511627776 elements', 'which has 4')
  end)

  it('reads legacy pickles longer than the first MiB (storages are read at their offsets)', function()
    local tensors, pad = {}, string.rep('x', 200)
    for i = 1, 6000 do tensors[i] = { pad .. i, i - 1, { 1 }, { 1 } } end
    local bytes = legacy(tensors, 6000)
    assert.is_true(#bytes > 2 ^ 20 + 6000 * 12)
    local w = pth.read(put(tmp_path(), bytes))
    assert.equal(6000, #w.names)
    assert.equal(5999.5, w.tensors[pad .. 6000].data[0])
  end)

  it('checks a storage of 2^40 elements against the file size before reading it', function()
    local path = put(tmp_path(), legacy({ { 'w', 0, { 1 }, { 1 } } }, 4, { pid_numel = 2 ^ 40, count = 2 ^ 40 }))
    refused(path, "truncated: storage '0' needs 4398046511104 bytes", 'the file has 16')
  end)
end)

describe('weights.unpickle', function()
  local function load(body, opts) return unpickle.load(P.pickle(body), 1, opts) end

  it('decodes the scalar opcodes', function()
    assert.equal(300, load('M\44\1'))
    assert.equal(-2, load('J\254\255\255\255'))
    assert.equal(-1, load('\138\1\255'))
    assert.equal(-129, load('\138\2\127\255'))
    assert.equal(2 ^ 40, load('\138\6\0\0\0\0\0\1'))
    assert.equal(0, load('\138\0'))
    assert.equal(1.5, load('G\63\248\0\0\0\0\0\0'))
    assert.equal('hi', load('U\2hi'))
    assert.equal('hé', load('\140\3hé'))
    assert.equal(unpickle.NONE, load('N'))
    assert.is_true(load('\136'))
    local big = load('\138\10\108\252\156\70\249\32\106\168\80\25')
    assert.same({ py = 'long', hex = '1950a86a20f9469cfc6c' }, big)
  end)

  it('builds containers and shares memoised objects', function()
    local v = load('](' .. P.int(1) .. 'q\0h\0' .. ')' .. 'e')
    assert.equal('list', v.py)
    assert.equal(3, v.n)
    local d = load(P.dict({ { 'a', '](e' .. 'q\1' }, { 'b', 'h\1' } }))
    assert.equal(d.map.a, d.map.b)
    assert.same({ 'a', 'b' }, d.keys)
  end)

  it('refuses any other global, by name, with GLOBAL and STACK_GLOBAL', function()
    err_of(load, P.global('os', 'system') .. P.tuple(P.str('true')) .. 'R')("refusing global 'os.system'")
    err_of(load, '\140\5posix\140\6system\147' .. P.tuple(P.str('x')) .. 'R')("refusing global 'posix.system'")
    err_of(load, P.global('builtins', 'getattr'))("refusing global 'builtins.getattr'")
    err_of(load, 'ibuiltins\neval\n')("refusing global 'builtins.eval'")
  end)

  it('does not call storage types and checks rebuild arguments', function()
    err_of(load, P.global('torch', 'FloatStorage') .. ')R')("'torch.FloatStorage' is not callable here")
    err_of(load, P.global('torch._utils', '_rebuild_tensor_v2') .. P.tuple(P.int(1)) .. 'R')('_rebuild_tensor_v2 expects')
  end)

  it('reports malformed pickles with the byte offset', function()
    err_of(load, '\7')('at byte 2', 'unknown opcode 0x07')
    err_of(load, 'a')('at byte 2', 'stack underflow')
    err_of(unpickle.load, '\128\2K\1')('ends without a STOP opcode')
    err_of(load, 'X\255\255\255\127')('needs 2147483647 more bytes')
    err_of(load, 'h\9')('memo 9 is not set')
    err_of(load, 't')('no MARK')
    err_of(load, 'S\'x\'\n')('unsupported opcode STRING')
    err_of(load, P.storage('0', 1))('persistent id in a pickle that must not have any')
    err_of(unpickle.load, '\128\9N.')('unsupported pickle protocol 9')
  end)
end)

-- Hostile float data (issue 11): a NaN whose upper bits match a LuaJIT type tag, in a storage of
-- every float type, in both formats, and in a pickled Python float, comes back as a real NaN.
describe('weights.pth float data with tag-like NaN bits', function()
  local pth_writer = dofile(root .. '/tests/fixtures/pth_writer.lua')
  local NAN = { F32 = le(0xffec0001, 4), F64 = le(0x20000000, 4) .. le(0xfffd8000, 4), F16 = le(0xfe01, 2),
                BF16 = le(0xffec, 2) }
  setup(function()
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    assert(os.execute('mkdir -p ' .. tmpdir) == 0)
  end)
  teardown(function() os.execute('rm -rf ' .. tmpdir) end)

  for _, format in ipairs({ 'zip', 'legacy' }) do
    it('canonicalises them in F32, F64, F16 and BF16 storages (' .. format .. ')', function()
      local entries = {}
      for dtype, nan in pairs(NAN) do
        local one = pth_writer.raw(dtype, ffi.new('float[1]', 1.5), 1)
        entries[#entries + 1] = { name = dtype, dtype = dtype, shape = { 3 }, data = one .. nan .. one }
      end
      table.sort(entries, function(a, b) return a.name < b.name end)
      local w = weights.load(put(tmp_path(), pth_writer.encode(entries, format)))
      for dtype in pairs(NAN) do
        local d = w.tensors[dtype].data
        assert.equal(1.5, d[0], dtype)
        assert.equal('number', type(d[1]), dtype)
        assert.is_true(d[1] ~= d[1], dtype)
        assert.equal(0x7fc00000, ffi.cast('uint32_t*', d)[1], dtype)
      end
    end)
  end

  it('reads a tag-NaN BINFLOAT as a NaN number', function()
    for _, hi in ipairs({ '\255\253\128\0', '\255\255\128\0', '\255\248\0\0' }) do
      local v = unpickle.load(P.pickle('G' .. hi .. '\32\0\0\1'))
      assert.equal('number', type(v))
      assert.is_true(v ~= v)
    end
  end)
end)
