-- weights/init.lua: load a weights file, choosing the reader by extension
-- (or, failing that, by sniffing the file's first bytes).
-- Every reader returns { names = {...}, tensors = {[name] = tensor}, metadata }.
-- To add a format: add its reader to READERS and, if it has a recognisable
-- magic, a test to sniff().
local M = {}

local READERS = {
  safetensors = function(path) return require('weights.safetensors').read(path) end,
}

-- Format name from the file's contents, or nil.
local function sniff(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local head = f:read(9) or ''
  f:close()
  -- safetensors: u64 LE header length (well under 2^32 in practice), then '{'.
  if #head == 9 and head:sub(9, 9) == '{' and head:sub(5, 8) == '\0\0\0\0' then
    return 'safetensors'
  end
  return nil
end

function M.load(path)
  local ext = path:match('%.([%w_]+)$')
  local reader = ext and READERS[ext:lower()]
  if not reader then
    local fmt = sniff(path)
    reader = fmt and READERS[fmt]
  end
  if not reader then
    error(path .. ': unsupported weights format (expected .safetensors)', 0)
  end
  return reader(path)
end

return M
