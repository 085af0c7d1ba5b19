-- npy_spec.lua: tests for compiler/weights/npy.lua, with .npy files built by
-- hand exactly as numpy writes them.
local ffi = require 'ffi'
local tensor = require 'tensor'
local npy = require 'weights.npy'

local tmpdir
local counter = 0

local function tmp_path()
  counter = counter + 1
  return tmpdir .. '/a' .. counter .. '.npy'
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

-- A v1.0 .npy as numpy >= 1.? writes it: dict, spaces, '\n', total % 64 == 0.
local function npy_bytes(dict, data, align)
  align = align or 64
  local pad = (align - (10 + #dict + 1) % align) % align
  local h = dict .. string.rep(' ', pad) .. '\n'
  return '\147NUMPY\1\0' .. string.char(#h % 256, math.floor(#h / 256)) .. h .. data
end

local function floats(list)
  return ffi.string(ffi.new('float[?]', #list, list), 4 * #list)
end

local function assert_err(path, needle)
  local ok, e = pcall(npy.read, path)
  assert.is_false(ok)
  assert.is_nil(e:find('\n'))
  assert.equal(path .. ': ', e:sub(1, #path + 2))
  assert.truthy(e:find(needle, 1, true), 'missing "' .. needle .. '" in: ' .. e)
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

describe('npy', function()
  it('round trips tensors of several ranks', function()
    for _, shape in ipairs({ { 2, 3, 4 }, { 5 }, {}, { 0, 3 }, { 1, 1, 1, 1 } }) do
      local path = tmp_path()
      local t = tensor.random(shape, tensor.rng(3), 1)
      npy.write(path, t)
      assert.is_nil(io.open(path .. '.tmp', 'rb'))
      local r = npy.read(path)
      assert.same(shape, r.shape)
      assert.equal(t.numel, r.numel)
      for i = 0, t.numel - 1 do assert.equal(t.data[i], r.data[i]) end
    end
  end)

  it('writes the same bytes numpy does', function()
    local path = tmp_path()
    npy.write(path, tensor.new({ 2, 3 }, { 1, 2, 3, 4, 5, 6 }))
    local want = npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
      floats({ 1, 2, 3, 4, 5, 6 }))
    assert.equal(want, slurp(path))
    assert.equal(128 + 24, #want) -- header block is 128 bytes
    path = tmp_path()
    npy.write(path, tensor.new({ 3 }, { 1, 2, 3 }))
    assert.equal(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }",
      floats({ 1, 2, 3 })), slurp(path))
    path = tmp_path()
    npy.write(path, tensor.new({}, { 7 }))
    assert.equal(npy_bytes("{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
      floats({ 7 })), slurp(path))
  end)

  it('reads numpy-style files with 16-byte alignment and v2.0 headers', function()
    local path = put(tmp_path(), npy_bytes(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", floats({ 1.5, -1 }), 16))
    local r = npy.read(path)
    assert.same({ 2 }, r.shape)
    assert.equal(-1, r.data[1])
    local h = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }"
    h = h .. string.rep(' ', (64 - (12 + #h + 1) % 64) % 64) .. '\n'
    path = put(tmp_path(), '\147NUMPY\2\0' .. string.char(#h, 0, 0, 0) .. h .. floats({ 3, 4 }))
    r = npy.read(path)
    assert.same({ 1, 2 }, r.shape)
    assert.equal(4, r.data[1])
  end)

  it('converts <f8 and <f2', function()
    local d = ffi.new('double[2]', { 0.1, -3.5 })
    local r = npy.read(put(tmp_path(), npy_bytes(
      "{'descr': '<f8', 'fortran_order': False, 'shape': (2,), }", ffi.string(d, 16))))
    assert.equal(tonumber(ffi.new('float', 0.1)), r.data[0])
    assert.equal(-3.5, r.data[1])
    -- 0x3C00 = 1, 0xC000 = -2
    r = npy.read(put(tmp_path(), npy_bytes(
      "{'descr': '<f2', 'fortran_order': False, 'shape': (2,), }", '\0\60\0\192')))
    assert.equal(1, r.data[0])
    assert.equal(-2, r.data[1])
  end)

  it('rejects other dtypes', function()
    assert_err(put(tmp_path(), npy_bytes(
      "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }", string.rep('\0', 8))),
      "unsupported dtype '<i8'")
    assert_err(put(tmp_path(), npy_bytes(
      "{'descr': '>f4', 'fortran_order': False, 'shape': (1,), }", string.rep('\0', 4))),
      "unsupported dtype '>f4'")
  end)

  it('rejects fortran order', function()
    assert_err(put(tmp_path(), npy_bytes(
      "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", floats({ 1, 2, 3, 4 }))),
      'fortran_order=True')
  end)

  it('rejects bad magic, bad headers and truncated data', function()
    assert_err(put(tmp_path(), 'hello world, not numpy'), 'bad magic')
    assert_err(put(tmp_path(), ''), 'bad magic')
    assert_err(put(tmp_path(), '\147NUMPY\1\0\200\0{'), 'truncated .npy header')
    assert_err(put(tmp_path(), npy_bytes("{'descr': '<f4'}", '')), 'malformed .npy header')
    assert_err(put(tmp_path(), npy_bytes(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", '')), 'malformed .npy shape')
    assert_err(put(tmp_path(), npy_bytes(
      "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", floats({ 1, 2 }))),
      'truncated: header says 12 bytes of data, file has 8')
    assert_err(tmpdir .. '/missing.npy', 'cannot open')
  end)

  it('reads NaNs whose bits match LuaJIT type tags as real NaNs (inputs of foldc run)', function()
    local function words(list) return ffi.string(ffi.new('uint32_t[?]', #list, list), 4 * #list) end
    local function halves(list) return ffi.string(ffi.new('uint16_t[?]', #list, list), 2 * #list) end
    for _, case in ipairs({
      { '<f4', words({ 0xffec0001, 0xfffc0000, 0x3fc00000 }) },
      { '<f8', words({ 0x20000000, 0xfffd8000, 0, 0xffff8000, 0, 0x3ff80000 }) },
      { '<f2', halves({ 0xfe01, 0xffff, 0x3e00 }) },
    }) do
      local t = npy.read(put(tmp_path(), npy_bytes(
        "{'descr': '" .. case[1] .. "', 'fortran_order': False, 'shape': (3,), }", case[2])))
      for i = 0, 1 do
        assert.equal('number', type(t.data[i]), case[1])
        assert.is_true(t.data[i] ~= t.data[i], case[1])
      end
      assert.equal(1.5, t.data[2], case[1])
    end
  end)
end)
