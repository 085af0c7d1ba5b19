-- 64-bit hashes: FNV-1a over strings (cache keys, model ids) and a word-wise multiply-xor over
-- 64-byte-padded buffers (the weights blob checksum; runtime/foldc_runtime.h computes the same).
local ffi = require 'ffi'
local bit = require 'bit'

local hash = {}

local FNV_OFFSET, FNV_PRIME = 0xcbf29ce484222325ULL, 0x100000001b3ULL

function hash.string(s)
  local h = FNV_OFFSET
  for i = 1, #s do
    h = bit.bxor(h, s:byte(i)) * FNV_PRIME
  end
  return h
end

function hash.hex(h)
  return bit.tohex(h, 16)
end

-- Checksum of `nbytes` (a multiple of 8) at pointer p: h = (h ^ word) * prime, word by word.
function hash.words(p, nbytes)
  local w = ffi.cast('const uint64_t *', p)
  local h = FNV_OFFSET
  for i = 0, nbytes / 8 - 1 do h = bit.bxor(h, w[i]) * FNV_PRIME end
  return h
end

return hash
