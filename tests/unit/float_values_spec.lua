-- float_values_spec.lua: hostile float data. Every NaN a reader returns is the canonical one
-- whatever its bits in the file (LuaJIT reads a NaN whose upper bits match one of its type tags as
-- a fake string/nil/table: segfaults and "attempt to perform arithmetic on a nil value" before);
-- the front end refuses NaN/infinite weights and negative BatchNorm variances by key unless
-- --allow-nonfinite (bind.allow_nonfinite); `foldc weights` lists any name safely.
local ffi = require 'ffi'
local st = require 'weights.safetensors'
local bind = require 'bind'
local pipeline = require 'pipeline'
local pth_writer = dofile((os.getenv('FOLDC_ROOT') or '.') .. '/tests/fixtures/pth_writer.lua')

local root = os.getenv('FOLDC_ROOT') or '.'
local MODEL = root .. '/tests/fixtures/fixtures.lua:resnet18_w8'
local WEIGHTS = root .. '/tests/fixtures/data/resnet18_w8.safetensors'

local tmpdir
local counter = 0
local function tmp_path(ext)
  counter = counter + 1
  return tmpdir .. '/v' .. counter .. (ext or '.safetensors')
end
local function put(path, bytes)
  local f = assert(io.open(path, 'wb'))
  f:write(bytes)
  f:close()
  return path
end
local function le(n, bytes)
  local t = {}
  for i = 1, bytes do
    t[i] = string.char(n % 256)
    n = math.floor(n / 256)
  end
  return table.concat(t)
end

-- A safetensors file holding one tensor 'x' of dtype with the given raw data.
local function one_tensor(dtype, n, data, pad_to)
  local h = string.format('{"x":{"dtype":"%s","shape":[%d],"data_offsets":[0,%d]}}', dtype, n, #data)
  h = h .. string.rep(' ', (pad_to or #h) - #h)
  return le(#h, 8) .. h .. data
end

-- Every NaN of the IEEE double whose upper 17 bits are one of LuaJIT's 16 tag values (GC64 and not).
local TAG_HI = {}
for k = 0, 15 do TAG_HI[#TAG_HI + 1] = 0xfff80000 + k * 0x8000 end
TAG_HI[#TAG_HI + 1] = 0xfffffff2 -- non-GC64 tags: upper 32 bits >= ~13
TAG_HI[#TAG_HI + 1] = 0xffffffff

local function assert_canonical_nan(data, i, what)
  local v = data[i]
  assert.equal('number', type(v), what)
  assert.is_true(v ~= v, what .. ': not a NaN')
  assert.equal(0x7fc00000, ffi.cast('uint32_t*', data)[i], what .. ': NaN not canonical')
end

local function bits_of(words) -- uint32 little-endian words -> bytes
  local t = {}
  for i, w in ipairs(words) do t[i] = le(w, 4) end
  return table.concat(t)
end

-- The lines `foldc weights FILE` prints, and its exit status.
local function listing(path)
  local lines, real_print = {}, _G.print
  _G.print = function(s) lines[#lines + 1] = s end
  local ok, rc = pcall(require('verbs.weights').run, { file = path })
  _G.print = real_print
  assert(ok, rc)
  return lines, rc
end

describe('float data with tag-like NaN bits', function()
  setup(function()
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    assert(require('lfs').mkdir(tmpdir))
  end)
  teardown(function() os.execute('rm -rf ' .. tmpdir) end)

  it('the 77-byte F64 safetensors file of issue 11 loads, lists, and gives a canonical NaN', function()
    for _, hi in ipairs(TAG_HI) do
      for _, lo in ipairs({ 0, 1, 0x20000000 }) do
        local path = put(tmp_path(), one_tensor('F64', 1, bits_of({ lo, hi }), 61))
        assert.equal(77, require('lfs').attributes(path, 'size'))
        local w = st.read(path)
        assert_canonical_nan(w.tensors.x.data, 0, string.format('F64 %08x%08x', hi, lo))
        local lines, rc = listing(path)
        assert.equal(0, rc)
        assert.equal('x     F64    1          8', lines[2])
      end
    end
  end)

  it('F32, BF16 and F16 NaNs of every tag are canonical; infinities and numbers are kept', function()
    local words = {}
    for _, hi in ipairs(TAG_HI) do
      words[#words + 1] = bit.bor(bit.lshift(bit.rshift(hi, 20), 20), 0x000c0001) -- float NaN, payload
    end
    words[#words + 1] = 0xffec0001
    words[#words + 1] = 0x7f800001
    local n = #words
    local w = st.read(put(tmp_path(), one_tensor('F32', n, bits_of(words))))
    for i = 0, n - 1 do assert_canonical_nan(w.tensors.x.data, i, string.format('F32 %08x', words[i + 1])) end

    local halves = { 0xffec, 0xff81, 0x7f81, 0xfffe, 0x7f80, 0xff80, 0x3f80 } -- BF16: 5 NaNs, +-inf, 1
    local raw = {}
    for i, h in ipairs(halves) do raw[i] = le(h, 2) end
    w = st.read(put(tmp_path(), one_tensor('BF16', #halves, table.concat(raw))))
    for i = 0, 3 do assert_canonical_nan(w.tensors.x.data, i, string.format('BF16 %04x', halves[i + 1])) end
    assert.same({ math.huge, -math.huge, 1 }, { w.tensors.x.data[4], w.tensors.x.data[5], w.tensors.x.data[6] })

    halves = { 0xfe01, 0x7c01, 0xffff, 0x7c00, 0xfc00, 0x3c00 } -- F16: 3 NaNs, +-inf, 1
    raw = {}
    for i, h in ipairs(halves) do raw[i] = le(h, 2) end
    w = st.read(put(tmp_path(), one_tensor('F16', #halves, table.concat(raw))))
    for i = 0, 2 do assert_canonical_nan(w.tensors.x.data, i, string.format('F16 %04x', halves[i + 1])) end
    assert.same({ math.huge, -math.huge, 1 }, { w.tensors.x.data[3], w.tensors.x.data[4], w.tensors.x.data[5] })
  end)

  it('double_at (pickle floats) returns a real NaN for every tag', function()
    for _, hi in ipairs(TAG_HI) do
      local v = st.double_at(ffi.cast('const uint8_t*', bits_of({ 1, hi })))
      assert.equal('number', type(v))
      assert.is_true(v ~= v)
    end
    assert.equal(-2.5, st.double_at(ffi.cast('const uint8_t*', bits_of({ 0, 0xc0040000 }))))
  end)
end)

describe('weight values through the front end', function()
  -- resnet18_w8's fixture weights with edit(tensors) applied, written as safetensors
  local function edited(edit)
    local w = st.read(WEIGHTS)
    edit(w.tensors)
    local list = {}
    for _, name in ipairs(w.names) do
      if w.tensors[name].data then list[#list + 1] = { name = name, tensor = w.tensors[name] } end
    end
    local path = tmp_path()
    st.write(path, list)
    return path
  end
  local function front_end_error(path)
    local ok, e = pcall(pipeline.deploy_graph, MODEL, path)
    assert.is_false(ok, 'expected a refusal')
    assert.is_string(e)
    assert.is_nil(e:find('\n'), 'multi-line error: ' .. e)
    return e
  end

  setup(function()
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    assert(require('lfs').mkdir(tmpdir))
  end)
  teardown(function()
    bind.allow_nonfinite = false
    os.execute('rm -rf ' .. tmpdir)
  end)

  it('F32 0xffec0001 in a conv weight: refused by key, or built with --allow-nonfinite', function()
    local path = edited(function(t) ffi.cast('uint32_t*', t['conv1.weight'].data)[5] = 0xffec0001 end)
    assert.equal(path .. ': conv1.weight: 1 non-finite values (first nan at index 5) (NaN, infinite or '
      .. 'negative-variance weights; --allow-nonfinite accepts them)', front_end_error(path))
    bind.allow_nonfinite = true
    local deploy = pipeline.deploy_graph(MODEL, path)
    bind.allow_nonfinite = false
    local nans = 0
    for _, t in pairs(deploy.params) do
      for i = 0, t.numel - 1 do
        local v = t.data[i]
        assert.equal('number', type(v))
        if v ~= v then nans = nans + 1 end
      end
    end
    assert.is_true(nans > 0, 'the NaN was folded away')
  end)

  it('refuses negative running variances and infinities, naming every key', function()
    local path = edited(function(t)
      local v = t['bn1.running_var'].data
      v[2], v[5], v[7] = -0.5, -1, -2
      t['fc.bias'].data[3] = -math.huge
      t['layer1.0.bn2.running_var'].data[0] = 0 / 0
    end)
    local e = front_end_error(path)
    assert.truthy(e:find(path .. ': bn1.running_var: 3 negative values (first -0.5 at index 2)', 1, true), e)
    assert.truthy(e:find('layer1.0.bn2.running_var: 1 non-finite values (first nan at index 0)', 1, true), e)
    assert.truthy(e:find('fc.bias: 1 non-finite values (first -inf at index 3)', 1, true), e)
  end)

  it('refuses a tag NaN in conv1.weight stored as F32, F64, F16 or BF16 in a zip or legacy .pth', function()
    local ref = st.read(WEIGHTS)
    local NAN = { F32 = le(0xffec0001, 4), F64 = le(0x20000000, 4) .. le(0xfffd8000, 4), F16 = le(0xfe01, 2),
                  BF16 = le(0xffec, 2) }
    for _, format in ipairs({ 'zip', 'legacy' }) do
      for _, dtype in ipairs({ 'F32', 'F64', 'F16', 'BF16' }) do
        local entries = {}
        for _, name in ipairs(ref.names) do
          local t = ref.tensors[name]
          if t.data then
            local e = { name = name, dtype = 'F32', shape = t.shape, data = pth_writer.raw('F32', t.data, t.numel) }
            if name == 'conv1.weight' then
              local size = #NAN[dtype]
              e.dtype = dtype
              e.data = pth_writer.raw(dtype, t.data, t.numel)
              e.data = e.data:sub(1, 5 * size) .. NAN[dtype] .. e.data:sub(6 * size + 1)
            end
            entries[#entries + 1] = e
          end
        end
        local path = put(tmp_path('.pth'), pth_writer.encode(entries, format))
        local e = front_end_error(path)
        assert.equal(path .. ': conv1.weight: 1 non-finite values (first nan at index 5) (NaN, infinite or '
          .. 'negative-variance weights; --allow-nonfinite accepts them)', e, format .. ' ' .. dtype)
      end
    end
  end)
end)

describe('foldc weights listing', function()
  setup(function()
    tmpdir = os.tmpname()
    os.remove(tmpdir)
    assert(require('lfs').mkdir(tmpdir))
  end)
  teardown(function() os.execute('rm -rf ' .. tmpdir) end)

  it('lists names and shapes of 100+ characters, aligned', function()
    local long = string.rep('n', 150)
    local h = string.format('{"%s":{"dtype":"F32","shape":[%s],"data_offsets":[0,4]},'
      .. '"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', long, string.rep('1,', 59) .. '1')
    local lines = listing(put(tmp_path(), le(#h, 8) .. h .. string.rep('\0', 8)))
    assert.equal(4, #lines)
    assert.equal(long .. '  F32    ' .. string.rep('1x', 59) .. '1      4', lines[2])
    assert.equal('b' .. string.rep(' ', 151) .. 'F32    1' .. string.rep(' ', 118) .. '      4', lines[3])
  end)

  it('prints names from a .pth escaped, one line per tensor', function()
    local entries = {}
    for i, name in ipairs({ 'a\nb', '\27[2Jx', 'caf\233', 'caf\195\169' }) do
      entries[i] = { name = name, dtype = 'F32', shape = { 1 }, data = le(0, 4) }
    end
    local lines = listing(put(tmp_path('.pth'), pth_writer.encode(entries, 'legacy')))
    assert.same({ 'name      dtype  shape  bytes', 'a\\x0ab    F32    1          4', '\\x1b[2Jx  F32    1          4',
      'caf\\xe9   F32    1          4', 'caf\195\169      F32    1          4' }, { unpack(lines, 1, 5) })
  end)
end)
