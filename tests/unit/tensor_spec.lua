-- tensor_spec.lua: tests for compiler/tensor.lua (tensor value and RNG).
local tensor = require 'tensor'

describe('tensor', function()
  it('computes numel and shape strings', function()
    assert.equal(64 * 3 * 7 * 7, tensor.numel({ 64, 3, 7, 7 }))
    assert.equal(1, tensor.numel({}))
    assert.equal(0, tensor.numel({ 3, 0 }))
    assert.equal('64x3x7x7', tensor.shape_str({ 64, 3, 7, 7 }))
    assert.equal('5', tensor.shape_str({ 5 }))
    assert.equal('scalar', tensor.shape_str({}))
  end)

  it('rejects bad dims', function()
    assert.has_error(function() tensor.numel({ 2, -1 }) end)
    assert.has_error(function() tensor.numel({ 2.5 }) end)
  end)

  it('zero-fills new tensors and copies the shape', function()
    local shape = { 2, 3 }
    local t = tensor.new(shape)
    assert.equal(6, t.numel)
    for i = 0, 5 do assert.equal(0, t.data[i]) end
    shape[1] = 99
    assert.same({ 2, 3 }, t.shape)
  end)

  it('makes scalars', function()
    local t = tensor.new({}, { 4.5 })
    assert.equal(1, t.numel)
    assert.equal(4.5, t.data[0])
    assert.same({}, t.shape)
  end)

  it('takes table data and checks its length', function()
    local t = tensor.new({ 3 }, { 1, 2, 3 })
    assert.equal(3, t.data[2])
    assert.has_error(function() tensor.new({ 3 }, { 1, 2 }) end)
  end)

  it('clones deeply', function()
    local a = tensor.new({ 2 }, { 1, 2 })
    local b = tensor.clone(a)
    b.data[0] = 7
    b.shape[1] = 5
    assert.equal(1, a.data[0])
    assert.same({ 2 }, a.shape)
    assert.equal(2, b.data[1])
  end)

  it('has a deterministic, seed-dependent rng', function()
    local r1, r2, r3 = tensor.rng(42), tensor.rng(42), tensor.rng(43)
    local same, diff = true, false
    for _ = 1, 100 do
      local a, b, c = r1:uniform(), r2:uniform(), r3:uniform()
      if a ~= b then same = false end
      if a ~= c then diff = true end
      assert.is_true(a >= 0 and a < 1)
    end
    assert.is_true(same)
    assert.is_true(diff)
  end)

  it('matches reference splitmix64 output', function()
    -- splitmix64 with seed 0: first output 0xE220A8397B1DCDAF
    local r = tensor.rng(0)
    assert.equal(0xE220A8397B1DCDAFULL, r:next_u64())
    assert.equal(0x6E789E6AA1B965F4ULL, r:next_u64())
  end)

  it('draws roughly standard normals', function()
    local r = tensor.rng(1)
    local n, sum, sq = 20000, 0, 0
    for _ = 1, n do
      local x = r:normal()
      sum, sq = sum + x, sq + x * x
    end
    local mean = sum / n
    assert.is_true(math.abs(mean) < 0.05)
    assert.is_true(math.abs(sq / n - mean * mean - 1) < 0.05)
  end)

  it('makes reproducible random tensors', function()
    local a = tensor.random({ 4, 5 }, tensor.rng(7), 0.1)
    local b = tensor.random({ 4, 5 }, tensor.rng(7), 0.1)
    assert.same({ 4, 5 }, a.shape)
    local nonzero = false
    for i = 0, 19 do
      assert.equal(a.data[i], b.data[i])
      if a.data[i] ~= 0 then nonzero = true end
      assert.is_true(math.abs(a.data[i]) < 1)
    end
    assert.is_true(nonzero)
  end)
end)
