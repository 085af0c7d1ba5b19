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

-- True if s is well-formed UTF-8 (no overlong form, surrogate or code point past U+10FFFF).
function M.valid_utf8(s)
  if not s:find('[\128-\255]') then return true end
  local i, n = 1, #s
  while i <= n do
    local c = s:byte(i)
    if c < 0x80 then
      i = i + 1
    else
      local len, min
      if c >= 0xc2 and c <= 0xdf then len, min = 2, 0x80
      elseif c >= 0xe0 and c <= 0xef then len, min = 3, 0x800
      elseif c >= 0xf0 and c <= 0xf4 then len, min = 4, 0x10000
      else return false end
      local cp = c % 2 ^ (7 - len)
      for k = 1, len - 1 do
        local b = s:byte(i + k)
        if not b or b < 0x80 or b > 0xbf then return false end
        cp = cp * 64 + b - 0x80
      end
      if cp < min or cp > 0x10ffff or (cp >= 0xd800 and cp <= 0xdfff) then return false end
      i = i + len
    end
  end
  return true
end

-- s (a name from a file) safe to print on one line of a terminal: control characters (C0, DEL,
-- C1), and every byte of a string that is not UTF-8, written as \xNN.
function M.printable(s)
  local function hex(c) return (c:gsub('.', function(b) return string.format('\\x%02x', b:byte()) end)) end
  if not M.valid_utf8(s) then return (s:gsub('[%c\128-\255]', hex)) end
  return (s:gsub('%c', hex):gsub('\194[\128-\159]', hex))
end

-- Why name cannot be a tensor name ('is empty', 'is not valid UTF-8', 'has control characters'),
-- or nil.
function M.name_problem(name)
  if name == '' then return 'is empty' end
  if not M.valid_utf8(name) then return 'is not valid UTF-8' end
  if name:find('%c') or name:find('\194[\128-\159]') then return 'has control characters' end
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
