-- safetensors_spec.lua: tests for compiler/weights/safetensors.lua and the
-- weights.load dispatcher, using files built byte by byte.
local ffi = require 'ffi'
local tensor = require 'tensor'
local st = require 'weights.safetensors'
local weights = require 'weights.init'

local tmpdir
local counter = 0

local function tmp_path(ext)
  counter = counter + 1
  return tmpdir .. '/f' .. counter .. (ext or '.safetensors')
end

local function u64(n)
  local b = {}
  for i = 1, 8 do
    b[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(b)
end

local function put(path, bytes)
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
  return path
end

-- Raw safetensors bytes from a header string and data string.
local function raw(header, data)
  return u64(#header) .. header .. (data or '')
end

local function floats(list)
  local a = ffi.new('float[?]', #list, list)
  return ffi.string(a, 4 * #list)
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, 'expected an error')
  return e
end

-- The error names the file, contains `needle`, and is one line.
local function assert_err(path, needle, key)
  local e = err_of(st.read, path)
  assert.is_string(e)
  assert.is_nil(e:find('\n'), 'multi-line error: ' .. e)
  assert.equal(path .. ': ', e:sub(1, #path + 2))
  assert.truthy(e:find(needle, 1, true), 'missing "' .. needle .. '" in: ' .. e)
  if key then
    assert.truthy(e:find("'" .. key .. "'", 1, true), 'missing key ' .. key .. ' in: ' .. e)
  end
  return e
end

setup(function()
  tmpdir = os.tmpname()
  os.remove(tmpdir)
  assert(require('lfs').mkdir(tmpdir))
end)

teardown(function()
  local lfs = require 'lfs'
  for name in lfs.dir(tmpdir) do
    if name ~= '.' and name ~= '..' then os.remove(tmpdir .. '/' .. name) end
  end
  lfs.rmdir(tmpdir)
end)

describe('safetensors round trip', function()
  it('writes and reads back tensors in order with metadata', function()
    local path = tmp_path()
    local w = tensor.new({ 2, 3 }, { 1, -2, 3.5, 0, 1e-3, -7 })
    local b = tensor.new({ 3 }, { 0.25, 0.5, 0.75 })
    local s = tensor.new({}, { 42 })
    local z = tensor.new({ 0, 4 })
    st.write(path, {
      { name = 'conv.weight', tensor = w },
      { name = 'a.bias', tensor = b },
      { name = 'scale', tensor = s },
      { name = 'empty', tensor = z },
    }, { format = 'pt', note = 'x"y' })
    assert.is_nil(io.open(path .. '.tmp', 'rb'))

    local r = st.read(path)
    assert.same({ 'conv.weight', 'a.bias', 'scale', 'empty' }, r.names)
    assert.same({ format = 'pt', note = 'x"y' }, r.metadata)
    local rw = r.tensors['conv.weight']
    assert.same({ 2, 3 }, rw.shape)
    assert.equal('F32', rw.dtype)
    assert.equal(6, rw.numel)
    for i = 0, 5 do assert.equal(w.data[i], rw.data[i]) end
    assert.same({ 3 }, r.tensors['a.bias'].shape)
    assert.equal(0.75, r.tensors['a.bias'].data[2])
    assert.same({}, r.tensors.scale.shape)
    assert.equal(1, r.tensors.scale.numel)
    assert.equal(42, r.tensors.scale.data[0])
    assert.same({ 0, 4 }, r.tensors.empty.shape)
    assert.equal(0, r.tensors.empty.numel)
  end)

  it('pads the header with spaces to a multiple of 8 and keeps the given order', function()
    local path = tmp_path()
    st.write(path, {
      { name = 'z', tensor = tensor.new({ 1 }, { 1 }) },
      { name = 'a', tensor = tensor.new({ 2 }, { 2, 3 }) },
    })
    local f = assert(io.open(path, 'rb'))
    local bytes = f:read('*a')
    f:close()
    local n = 0
    for i = 8, 1, -1 do n = n * 256 + bytes:byte(i) end
    assert.equal(0, n % 8)
    local h = bytes:sub(9, 8 + n)
    assert.equal('{"z":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},'
      .. '"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}',
      (h:gsub(' +$', '')))
    assert.truthy(h:match('^[^ ]+ *$'))
    assert.equal(8 + n + 12, #bytes)
    assert.same({ 'z', 'a' }, st.read(path).names)
  end)

  it('writes an empty file that reads back empty', function()
    local path = tmp_path()
    st.write(path, {})
    local r = st.read(path)
    assert.same({}, r.names)
    assert.is_nil(r.metadata)
  end)

  it('replaces an existing file', function()
    local path = tmp_path()
    st.write(path, { { name = 'a', tensor = tensor.new({ 1 }, { 1 }) } })
    st.write(path, { { name = 'b', tensor = tensor.new({ 1 }, { 2 }) } })
    assert.same({ 'b' }, st.read(path).names)
  end)

  it('rejects bad input to write without leaving files behind', function()
    local path = tmp_path()
    local t = tensor.new({ 1 })
    local e = err_of(st.write, path, { { name = 'a', tensor = t }, { name = 'a', tensor = t } })
    assert.truthy(e:find(path, 1, true) and e:find("'a'", 1, true))
    assert.has_error(function() st.write(path, { { name = 'x', tensor = { shape = { 1 } } } }) end)
    assert.is_nil(io.open(path, 'rb'))
    assert.is_nil(io.open(path .. '.tmp', 'rb'))
    local bad = tmpdir .. '/no/such/dir/w.safetensors'
    e = err_of(st.write, bad, { { name = 'a', tensor = t } })
    assert.truthy(e:find(bad, 1, true))
  end)
end)

describe('safetensors dtypes', function()
  it('converts F16 to float32', function()
    -- 0x3C00 = 1, 0xC000 = -2, 0x3555 ~ 0.33325, 0x0001 = 2^-24 (subnormal),
    -- 0x7BFF = 65504 (max), 0x7C00 = inf, 0x8000 = -0
    local data = '\0\60' .. '\0\192' .. '\85\53' .. '\1\0' .. '\255\123' .. '\0\124' .. '\0\128'
    local path = put(tmp_path(), raw(
      '{"h":{"dtype":"F16","shape":[7],"data_offsets":[0,14]}}', data))
    local t = st.read(path).tensors.h
    assert.equal('F16', t.dtype)
    assert.equal(1, t.data[0])
    assert.equal(-2, t.data[1])
    assert.equal(0.25 * (1 + 0x155 / 1024), t.data[2]) -- 0.333251953125
    assert.equal(2 ^ -24, t.data[3])
    assert.equal(65504, t.data[4])
    assert.equal(math.huge, t.data[5])
    assert.equal(0, t.data[6])
    assert.equal(-math.huge, 1 / t.data[6])
  end)

  it('converts F16 NaN', function()
    local path = put(tmp_path(), raw(
      '{"h":{"dtype":"F16","shape":[],"data_offsets":[0,2]}}', '\0\126'))
    local v = st.read(path).tensors.h.data[0]
    assert.is_true(v ~= v)
  end)

  it('converts BF16 to float32', function()
    -- 0x3F80 = 1, 0xC040 = -3, 0x3E80 = 0.25, 0x4049 = 3.140625
    local data = '\128\63' .. '\64\192' .. '\128\62' .. '\73\64'
    local path = put(tmp_path(), raw(
      '{"b":{"dtype":"BF16","shape":[2,2],"data_offsets":[0,8]}}', data))
    local t = st.read(path).tensors.b
    assert.equal('BF16', t.dtype)
    assert.same({ 2, 2 }, t.shape)
    assert.equal(1, t.data[0])
    assert.equal(-3, t.data[1])
    assert.equal(0.25, t.data[2])
    assert.equal(3.140625, t.data[3])
  end)

  it('converts F64 to float32, even at an unaligned offset', function()
    local d = ffi.new('double[3]', { 1.5, -2.25, 1e10 })
    local header = '{"pad":{"dtype":"U8","shape":[3],"data_offsets":[0,3]},'
      .. '"d":{"dtype":"F64","shape":[3],"data_offsets":[3,27]}}'
    local path = put(tmp_path(), raw(header, 'abc' .. ffi.string(d, 24)))
    local r = st.read(path)
    assert.same({ 'pad', 'd' }, r.names)
    local t = r.tensors.d
    assert.equal(1.5, t.data[0])
    assert.equal(-2.25, t.data[1])
    assert.equal(1e10, t.data[2])
    assert.is_nil(r.tensors.pad.data)
  end)

  it('keeps integer tensors without float data, with scalar values', function()
    local i64 = ffi.new('int64_t[1]', 7)
    local i32 = ffi.new('int32_t[2]', { -5, 9 })
    local header = '{"bn.num_batches_tracked":{"dtype":"I64","shape":[],"data_offsets":[0,8]},'
      .. '"neg":{"dtype":"I32","shape":[1],"data_offsets":[8,12]},'
      .. '"idx":{"dtype":"I32","shape":[1],"data_offsets":[12,16]},'
      .. '"w":{"dtype":"F32","shape":[1],"data_offsets":[16,20]}}'
    local path = put(tmp_path(), raw(header,
      ffi.string(i64, 8) .. ffi.string(i32, 8) .. floats({ 0.5 })))
    local r = st.read(path)
    local n = r.tensors['bn.num_batches_tracked']
    assert.equal('I64', n.dtype)
    assert.is_nil(n.data)
    assert.same({ 7 }, n.int_values)
    assert.same({ -5 }, r.tensors.neg.int_values)
    assert.same({ 9 }, r.tensors.idx.int_values)
    assert.equal(0.5, r.tensors.w.data[0])
  end)

  it('validates the byte ranges of integer tensors', function()
    local path = put(tmp_path(), raw(
      '{"n":{"dtype":"I64","shape":[],"data_offsets":[0,4]}}', '\0\0\0\0'))
    assert_err(path, 'wrong size', 'n')
    path = put(tmp_path(), raw(
      '{"n":{"dtype":"I64","shape":[],"data_offsets":[0,8]}}', '\0\0\0\0'))
    assert_err(path, 'truncated', 'n')
  end)
end)

describe('safetensors validation', function()
  local good_entry = '"dtype":"F32","shape":[2],"data_offsets":[0,8]'

  it('rejects a missing file', function()
    assert_err(tmpdir .. '/missing.safetensors', 'cannot open')
  end)

  it('rejects files shorter than 8 bytes', function()
    assert_err(put(tmp_path(), ''), 'too short')
    assert_err(put(tmp_path(), '\1\0\0\0\0\0\0'), 'too short')
  end)

  it('rejects absurd header lengths', function()
    assert_err(put(tmp_path(), u64(200) .. '{}'), 'exceeds file size')
    assert_err(put(tmp_path(), u64(2 ^ 40) .. '{}'), 'absurd')
    assert_err(put(tmp_path(), '\255\255\255\255\255\255\255\255{}'), 'absurd')
  end)

  it('rejects headers that are not JSON objects', function()
    assert_err(put(tmp_path(), raw('{"a": {', '')), 'not valid JSON')
    assert_err(put(tmp_path(), raw('nope', '')), 'not a JSON object')
    assert_err(put(tmp_path(), raw('[1,2]', '')), 'not a JSON object')
    assert_err(put(tmp_path(), raw('"str"', '')), 'not a JSON object')
  end)

  it('rejects entries that are not objects or lack fields', function()
    assert_err(put(tmp_path(), raw('{"w":3}', '')), 'not an object', 'w')
    assert_err(put(tmp_path(), raw('{"w":{"shape":[2],"data_offsets":[0,8]}}',
      floats({ 1, 2 }))), 'missing dtype', 'w')
    assert_err(put(tmp_path(), raw('{"w":{"dtype":"F32","data_offsets":[0,8]}}',
      floats({ 1, 2 }))), 'missing shape', 'w')
    assert_err(put(tmp_path(), raw('{"w":{"dtype":"F32","shape":[2]}}',
      floats({ 1, 2 }))), 'missing data_offsets', 'w')
  end)

  it('rejects unknown dtypes', function()
    assert_err(put(tmp_path(), raw('{"w":{"dtype":"F33","shape":[2],"data_offsets":[0,8]}}',
      floats({ 1, 2 }))), 'unknown dtype F33', 'w')
  end)

  it('rejects bad shapes', function()
    assert_err(put(tmp_path(), raw('{"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}',
      floats({ 1, 2 }))), 'shape dim 1', 'w')
    assert_err(put(tmp_path(), raw('{"w":{"dtype":"F32","shape":[1,2.5],"data_offsets":[0,8]}}',
      floats({ 1, 2 }))), 'shape dim 2', 'w')
    assert_err(put(tmp_path(), raw('{"w":{"dtype":"F32","shape":["2"],"data_offsets":[0,8]}}',
      floats({ 1, 2 }))), 'shape dim 1', 'w')
    assert_err(put(tmp_path(), raw('{"w":{"dtype":"F32","shape":{"a":2},"data_offsets":[0,8]}}',
      floats({ 1, 2 }))), 'shape is not an array', 'w')
  end)

  it('rejects bad data_offsets', function()
    local function with(offs)
      return put(tmp_path(), raw('{"w":{"dtype":"F32","shape":[2],"data_offsets":' .. offs .. '}}',
        floats({ 1, 2 })))
    end
    assert_err(with('[8,0]'), 'data_offsets', 'w')
    assert_err(with('[0]'), 'data_offsets', 'w')
    assert_err(with('[0,8,9]'), 'data_offsets', 'w')
    assert_err(with('[-8,0]'), 'data_offsets', 'w')
    assert_err(with('[0,8.5]'), 'data_offsets', 'w')
    assert_err(with('"0-8"'), 'data_offsets', 'w')
  end)

  it('rejects offsets whose span does not match the shape', function()
    local e = assert_err(put(tmp_path(), raw(
      '{"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}', floats({ 1, 2 }))), 'wrong size', 'w')
    assert.truthy(e:find('needs 12', 1, true))
  end)

  it('rejects truncated files', function()
    local e = assert_err(put(tmp_path(), raw(
      '{"w":{' .. good_entry .. '}}', floats({ 1 }))), 'truncated', 'w')
    assert.truthy(e:find('header says 8 bytes of data, file has 4', 1, true))
    -- a file written by st.write and then cut short
    local path = tmp_path()
    st.write(path, { { name = 'big', tensor = tensor.new({ 100 }) } })
    local f = assert(io.open(path, 'rb'))
    local bytes = f:read('*a')
    f:close()
    put(path, bytes:sub(1, #bytes - 1))
    assert_err(path, 'truncated: header says 400 bytes of data, file has 399', 'big')
  end)

  it('rejects overlapping tensors', function()
    local header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
      .. '"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}'
    local e = assert_err(put(tmp_path(), raw(header, floats({ 1, 2, 3 }))), 'overlap', 'b')
    assert.truthy(e:find("'a'", 1, true))
    -- contained in a bigger tensor
    header = '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},'
      .. '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},'
      .. '"c":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}'
    assert_err(put(tmp_path(), raw(header, floats({ 1, 2, 3, 4 }))), 'overlap', 'b')
  end)

  it('allows empty tensors between tensors, refuses gaps and empty tensors inside another', function()
    local header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
      .. '"e":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},'
      .. '"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}'
    local r = st.read(put(tmp_path(), raw(header, floats({ 1, 2, 3 }))))
    assert.same({ 'a', 'e', 'b' }, r.names)
    assert.equal(3, r.tensors.b.data[0])
    header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
      .. '"b":{"dtype":"F32","shape":[1],"data_offsets":[12,16]}}'
    assert_err(put(tmp_path(), raw(header, floats({ 1, 2, 9, 3 }))), 'leave 4 unused bytes before it', 'b')
    header = '{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
    assert_err(put(tmp_path(), raw(header, floats({ 9, 3 }))), 'leave 4 unused bytes before it', 'b')
    header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
      .. '"e":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}'
    assert_err(put(tmp_path(), raw(header, floats({ 1, 2 }))), 'overlap', 'e')
  end)

  it('rejects a malformed __metadata__', function()
    assert_err(put(tmp_path(), raw('{"__metadata__":3}', '')), '__metadata__')
    assert_err(put(tmp_path(), raw('{"__metadata__":{"k":1}}', '')), '__metadata__')
  end)

  it('accepts __metadata__ and header padding, refuses trailing bytes', function()
    local header = '{"__metadata__":{"format":"pt"},"w":{' .. good_entry .. '}}   '
    local r = st.read(put(tmp_path(), raw(header, floats({ 1, 2 }))))
    assert.same({ format = 'pt' }, r.metadata)
    assert.same({ 'w' }, r.names)
    assert.equal(2, r.tensors.w.data[1])
    assert_err(put(tmp_path(), raw(header, floats({ 1, 2 }) .. 'xx')),
      "2 bytes after the last tensor ('w' ends at 8) (the data section has 10 bytes)")
    assert_err(put(tmp_path(), raw('{}', 'x')), '1 bytes after the last tensor (the data section has 1 bytes)')
  end)
end)

describe('safetensors strictness', function()
  local entry = '{"dtype":"F32","shape":[1],"data_offsets":[0,4]}'
  local four = floats({ 1 })

  it('refuses a key that appears twice, at any level, however it is escaped', function()
    assert_err(put(tmp_path(), raw('{"w":' .. entry .. ',"w":' .. entry .. '}', four)),
      "key 'w' appears twice in the JSON header")
    assert_err(put(tmp_path(), raw('{"w":' .. entry .. ',"\\u0077":' .. entry .. '}', four)),
      "key 'w' appears twice in the JSON header")
    assert_err(put(tmp_path(), raw('{"w":{"dtype":"F32","dtype":"F64","shape":[1],"data_offsets":[0,4]}}', four)),
      "'w': key 'dtype' appears twice in the JSON header")
    assert_err(put(tmp_path(), raw('{"__metadata__":{"a":"1","a":"2"},"w":' .. entry .. '}', four)),
      "'__metadata__': key 'a' appears twice")
    -- keys inside strings and arrays are not keys
    local r = st.read(put(tmp_path(), raw('{"__metadata__":{"a":"{\\"a\\":1, [\\"a\\"","b":"a"},"w":' .. entry .. '}', four)))
    assert.same({ 'w' }, r.names)
  end)

  it('refuses empty, control-character and non-UTF-8 names, printing them escaped', function()
    assert_err(put(tmp_path(), raw('{"":' .. entry .. '}', four)), "tensor name '' is empty")
    assert_err(put(tmp_path(), raw('{"a\\u0000b":' .. entry .. '}', four)), "tensor name 'a\\x00b' has control characters")
    assert_err(put(tmp_path(), raw('{"a\\nb":' .. entry .. '}', four)), "tensor name 'a\\x0ab' has control characters")
    assert_err(put(tmp_path(), raw('{"a\27[2J":' .. entry .. '}', four)), "tensor name 'a\\x1b[2J' has control characters")
    assert_err(put(tmp_path(), raw('{"a\194\155":' .. entry .. '}', four)), "tensor name 'a\\xc2\\x9b' has control characters")
    assert_err(put(tmp_path(), raw('{"caf\233":' .. entry .. '}', four)), "tensor name 'caf\\xe9' is not valid UTF-8")
    assert_err(put(tmp_path(), raw('{"\192\174":' .. entry .. '}', four)), 'is not valid UTF-8')
    assert.same({ 'café' }, st.read(put(tmp_path(), raw('{"café":' .. entry .. '}', four))).names)
  end)
end)

describe('weights.load', function()
  it('reads .safetensors files', function()
    local path = tmp_path()
    st.write(path, { { name = 'w', tensor = tensor.new({ 2 }, { 3, 4 }) } })
    local r = weights.load(path)
    assert.same({ 'w' }, r.names)
    assert.equal(4, r.tensors.w.data[1])
  end)

  it('recognises safetensors content under another extension', function()
    local path = tmp_path('.bin')
    st.write(path, { { name = 'w', tensor = tensor.new({ 1 }, { 3 }) } })
    assert.same({ 'w' }, weights.load(path).names)
  end)

  it('rejects other formats', function()
    local path = put(tmp_path('.onnx'), '\8\7 not a weights file')
    local ok, e = pcall(weights.load, path)
    assert.is_false(ok)
    assert.equal(path .. ': unsupported weights format (expected .safetensors, or a torch.save .pth/.pt/.bin/.ckpt)', e)
    ok, e = pcall(weights.load, tmpdir .. '/nothing.onnx')
    assert.is_false(ok)
    assert.truthy(e:find('unsupported weights format', 1, true))
  end)
end)
