-- npy.lua: read/write NumPy .npy files holding one float array.
-- Layout: "\x93NUMPY", major, minor, header length (u16 LE for v1, u32 LE for
-- v2/v3), then an ASCII Python dict literal such as
--   {'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }
-- padded with spaces and ended by '\n', then the raw C-order data.
-- Reads '<f4', '<f8' and '<f2' (converted to float32 by safetensors.to_float, which makes every
-- NaN canonical); writes v1.0 '<f4' with the data starting at a multiple of 64 bytes, as current
-- numpy does.
local ffi = require 'ffi'
local sys = require 'sys'
local tensor = require 'tensor'
local to_float = require('weights.safetensors').to_float

local M = {}

local MAGIC = '\147NUMPY'
local ITEMSIZE = { ['<f4'] = 4, ['<f8'] = 8, ['<f2'] = 2 }
local DTYPE = { ['<f4'] = 'F32', ['<f8'] = 'F64', ['<f2'] = 'F16' }

assert(ffi.abi('le'), 'weights.npy: big-endian hosts are not supported')

local function fail(path, msg)
  error(path .. ': ' .. msg, 0)
end

-- Returns a float32 tensor.
function M.read(path)
  local s, err = sys.read_bytes(path)
  if not s then fail(path, err) end
  if #s < 10 or s:sub(1, 6) ~= MAGIC then
    fail(path, 'not a .npy file (bad magic)')
  end
  local major = s:byte(7)
  local hlen, hstart
  if major == 1 then
    hlen, hstart = s:byte(9) + s:byte(10) * 256, 11
  elseif major == 2 or major == 3 then
    if #s < 12 then fail(path, 'truncated .npy header') end
    local b1, b2, b3, b4 = s:byte(9, 12)
    hlen, hstart = b1 + b2 * 256 + b3 * 65536 + b4 * 16777216, 13
  else
    fail(path, 'unsupported .npy version ' .. major .. '.' .. s:byte(8))
  end
  if hstart - 1 + hlen > #s then
    fail(path, 'truncated .npy header: says ' .. hlen .. ' bytes, file has '
      .. (#s - hstart + 1))
  end
  local h = s:sub(hstart, hstart + hlen - 1)

  local descr = h:match("['\"]descr['\"]%s*:%s*['\"]([^'\"]*)['\"]")
  local fortran = h:match("['\"]fortran_order['\"]%s*:%s*(%a+)")
  local shape_s = h:match("['\"]shape['\"]%s*:%s*%(([^)]*)%)")
  if not descr or not fortran or not shape_s then
    fail(path, 'malformed .npy header: ' .. (h:gsub('%s+$', '')))
  end
  local size = ITEMSIZE[descr]
  if not size then
    fail(path, "unsupported dtype '" .. descr .. "' (expected '<f4', '<f8' or '<f2')")
  end
  if fortran == 'True' then
    fail(path, 'fortran_order=True arrays are not supported (save a C-order array)')
  elseif fortran ~= 'False' then
    fail(path, 'malformed .npy header: fortran_order is ' .. fortran)
  end
  local shape = {}
  for item in shape_s:gmatch('[^,]+') do
    if item:match('%S') then
      local d = item:match('^%s*(%d+)L?%s*$')
      if not d then fail(path, 'malformed .npy shape (' .. shape_s .. ')') end
      shape[#shape + 1] = tonumber(d)
    end
  end

  local numel = tensor.numel(shape)
  local data_start = hstart + hlen - 1 -- 0-based offset of the data
  local need = numel * size
  local have = #s - data_start
  if need > have then
    fail(path, string.format('truncated: header says %.0f bytes of data, file has %d', need, have))
  end

  local src = ffi.cast('const uint8_t*', s) + data_start
  return tensor.new(shape, to_float(DTYPE[descr], src, numel))
end

-- Writes t (float32 tensor) as a v1.0 '<f4' C-order .npy, via path .. '.tmp'.
function M.write(path, t)
  local shape = t.shape
  local numel = tensor.numel(shape)
  local dims = {}
  for i = 1, #shape do dims[i] = string.format('%.0f', shape[i]) end
  local shape_s
  if #dims == 1 then
    shape_s = '(' .. dims[1] .. ',)'
  else
    shape_s = '(' .. table.concat(dims, ', ') .. ')'
  end
  local h = "{'descr': '<f4', 'fortran_order': False, 'shape': " .. shape_s .. ', }'
  -- 10 bytes of preamble + header + '\n' must be a multiple of 64.
  local pad = (64 - (10 + #h + 1) % 64) % 64
  h = h .. string.rep(' ', pad) .. '\n'
  if #h > 65535 then fail(path, 'shape too long for a v1.0 .npy header') end

  local ok, err = sys.write_atomic(path, function(f)
    local wok, werr = f:write(MAGIC, '\1\0', string.char(#h % 256, math.floor(#h / 256)), h)
    if wok and numel > 0 then wok, werr = f:write(ffi.string(t.data, numel * 4)) end
    return wok, werr
  end)
  if not ok then fail(path, err) end
end

return M
