-- weights/init.lua: load a weights file, choosing the reader by sniffing the file's first bytes
-- (or, failing that, by extension).
-- Every reader returns { names = {...}, tensors = {[name] = tensor}, metadata }.
-- To add a format: add its reader to READERS and, if it has a recognisable
-- magic, a test to sniff().
local M = {}

local function pth(path) return require('weights.pth').read(path) end

local READERS = {
  safetensors = function(path) return require('weights.safetensors').read(path) end,
  -- torch.save checkpoints (zip or legacy format), under the extensions people give them
  pth = pth, pt = pth, bin = pth, ckpt = pth, pkl = pth, tar = pth,
}

-- Format name from the file's contents, or nil.
local function sniff(path)
  local f = io.open(path, 'rb')
  if not f then return nil end
  local head = f:read(9) or ''
  f:close()
  -- torch.save: a zip archive, or (legacy) a pickle, PROTO 2..5
  if head:sub(1, 4) == 'PK\3\4' or (head:byte(1) == 0x80 and (head:byte(2) or 0) >= 2 and head:byte(2) <= 5) then
    return 'pth'
  end
  -- safetensors: u64 LE header length (well under 2^32 in practice), then '{'.
  if #head == 9 and head:sub(9, 9) == '{' and head:sub(5, 8) == '\0\0\0\0' then
    return 'safetensors'
  end
  return nil
end

-- opts.quiet: do not print the reader's notes (e.g. "using 'model' inside checkpoint") on stderr.
function M.load(path, opts)
  -- contents first (a safetensors file named .bin is still safetensors), then the extension
  local fmt = sniff(path)
  local reader = fmt and READERS[fmt]
  if not reader then
    local ext = path:match('%.([%w_]+)$')
    reader = ext and READERS[ext:lower()]
  end
  if not reader then
    error(path .. ': unsupported weights format (expected .safetensors, or a torch.save .pth/.pt/.bin/.ckpt)', 0)
  end
  local w = reader(path)
  if w.notes and #w.notes > 0 and not (opts and opts.quiet) then
    io.stderr:write('foldc: ', path, ': ', table.concat(w.notes, '; '), '\n')
  end
  return w
end

return M
