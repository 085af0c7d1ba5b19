-- tensor.lua: the compiler's tiny tensor value.
-- A tensor is { shape = {d1, d2, ...}, data = <ffi float[numel]>, numel = n },
-- row-major (C order) float32; shape {} is a scalar with numel 1.
-- Also a small deterministic RNG (splitmix64 on LuaJIT uint64 cdata), so random
-- tensors are reproducible across runs and platforms, unlike math.random.
local ffi = require 'ffi'
local bit = require 'bit'

local M = {}

-- Product of the dims; errors on anything that is not a non-negative integer.
function M.numel(shape)
  local n = 1
  for i = 1, #shape do
    local d = shape[i]
    if type(d) ~= 'number' or d < 0 or d ~= math.floor(d) then
      error('tensor: bad dim ' .. tostring(d) .. ' at index ' .. i .. ' of shape', 0)
    end
    n = n * d
  end
  return n
end

function M.shape_str(shape)
  if #shape == 0 then return 'scalar' end
  return table.concat(shape, 'x')
end

local function copy_shape(shape)
  local s = {}
  for i = 1, #shape do s[i] = shape[i] end
  return s
end

-- data: nil (zero-filled), a Lua array of numbers (copied), or an ffi float
-- array/pointer of at least numel elements (taken as is, not copied).
function M.new(shape, data)
  local n = M.numel(shape)
  local buf
  if data == nil then
    buf = ffi.new('float[?]', n)
  elseif type(data) == 'table' then
    if #data ~= n then
      error('tensor: ' .. #data .. ' values given for shape ' .. M.shape_str(shape)
        .. ' (' .. n .. ' elements)', 0)
    end
    buf = ffi.new('float[?]', n)
    for i = 1, n do buf[i - 1] = data[i] end
  elseif type(data) == 'cdata' then
    buf = data
  else
    error('tensor: data must be nil, a table or ffi float array, got ' .. type(data), 0)
  end
  return { shape = copy_shape(shape), data = buf, numel = n }
end

function M.clone(t)
  local buf = ffi.new('float[?]', t.numel)
  ffi.copy(buf, t.data, t.numel * 4)
  return { shape = copy_shape(t.shape), data = buf, numel = t.numel }
end

-- splitmix64 -----------------------------------------------------------------

local rng_mt = {}
rng_mt.__index = rng_mt

local GOLDEN = 0x9E3779B97F4A7C15ULL
local MIX1 = 0xBF58476D1CE4E5B9ULL
local MIX2 = 0x94D049BB133111EBULL
local TWO_M53 = 2 ^ -53

-- Next raw 64-bit value (uint64_t cdata).
function rng_mt:next_u64()
  local s = self.state + GOLDEN
  self.state = s
  local z = s
  z = bit.bxor(z, bit.rshift(z, 30)) * MIX1
  z = bit.bxor(z, bit.rshift(z, 27)) * MIX2
  return bit.bxor(z, bit.rshift(z, 31))
end

-- Uniform double in [0, 1) with 53 random bits.
function rng_mt:uniform()
  return tonumber(bit.rshift(self:next_u64(), 11)) * TWO_M53
end

-- Standard normal (Box-Muller; the second value of each pair is cached).
function rng_mt:normal()
  local spare = self.spare
  if spare then
    self.spare = nil
    return spare
  end
  local u1 = 1 - self:uniform() -- (0, 1], so log is finite
  local u2 = self:uniform()
  local r = math.sqrt(-2 * math.log(u1))
  local a = 2 * math.pi * u2
  self.spare = r * math.sin(a)
  return r * math.cos(a)
end

-- seed: a non-negative integer number or a uint64_t cdata.
function M.rng(seed)
  seed = seed or 0
  return setmetatable({ state = ffi.cast('uint64_t', seed) + 0ULL }, rng_mt)
end

-- Tensor of normal(0, 1) * scale samples (scale defaults to 1).
function M.random(shape, rng, scale)
  scale = scale or 1
  local t = M.new(shape)
  local d = t.data
  for i = 0, t.numel - 1 do d[i] = rng:normal() * scale end
  return t
end

return M
