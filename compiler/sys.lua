-- Processes and files: the few operating-system services the compiler needs, in one place.
local ffi = require 'ffi'
local lfs = require 'lfs'

ffi.cdef [[ int getpid(void); ]]

local sys = {}

-- Shell-quote one word.
function sys.q(s)
  return "'" .. tostring(s):gsub("'", "'\\''") .. "'"
end

local function command_line(argv)
  local words = {}
  for i, a in ipairs(argv) do words[i] = sys.q(a) end
  return table.concat(words, ' ')
end

-- Run argv; returns ok and the combined output.
function sys.run(argv, opts)
  opts = opts or {}
  local cmd = command_line(argv)
  if opts.cwd then cmd = 'cd ' .. sys.q(opts.cwd) .. ' && ' .. cmd end
  local p = io.popen(cmd .. ' 2>&1; echo "::exit=$?"')
  local out = p:read('*a')
  p:close()
  local code = tonumber(out:match('::exit=(%d+)%s*$'))
  out = out:gsub('::exit=%d+%s*$', '')
  return code == 0, out, code
end

-- Run argv; raise `what failed: <output tail>` unless it succeeds.
function sys.run_quiet(argv, what, opts)
  local ok, out = sys.run(argv, opts)
  if not ok then
    local tail = out:gsub('%s+', ' '):sub(-400)
    error(what .. ' failed: ' .. tail, 0)
  end
  return out
end

-- Run argv, streaming its output to ours; returns ok.
function sys.stream(argv, opts)
  opts = opts or {}
  local cmd = command_line(argv)
  if opts.cwd then cmd = 'cd ' .. sys.q(opts.cwd) .. ' && ' .. cmd end
  local ok = os.execute(cmd)
  return ok == 0 or ok == true
end

function sys.capture(argv)
  return sys.run_quiet(argv, argv[1])
end

-- The whole file as a string, or nil and a reason ('cannot open: ...' / 'cannot read file').
-- One read of the known size: much faster than read('*a') for large files.
function sys.read_bytes(path)
  local f, oerr = io.open(path, 'rb')
  if not f then return nil, 'cannot open: ' .. tostring(oerr) end
  local size = f:seek('end')
  local ok, s = pcall(function()
    return size and f:seek('set') and (size == 0 and '' or f:read(size))
  end)
  f:close()
  if not ok or type(s) ~= 'string' or #s ~= size then return nil, 'cannot read file' end
  return s
end

function sys.read_file(path)
  local s, err = sys.read_bytes(path)
  if not s then error(path .. ': ' .. err, 0) end
  return s
end

function sys.write_file(path, s)
  local f, err = io.open(path, 'wb')
  if not f then error(err, 0) end
  f:write(s)
  f:close()
end

-- Write path atomically: fill(f) writes through the open handle (returning what f:write returns)
-- into path .. '.tmp', which then replaces path; on any failure nothing is left behind. Returns
-- true, or nil and a reason: 'cannot write: ...', 'write failed: ...' or 'rename failed: ...'.
function sys.write_atomic(path, fill)
  local tmp = path .. '.tmp'
  local f, oerr = io.open(tmp, 'wb')
  if not f then return nil, 'cannot write: ' .. tostring(oerr) end
  local called, ok, werr = pcall(fill, f)
  if not called then ok, werr = nil, ok end
  local cok, cerr = f:close()
  if not ok or not cok then
    os.remove(tmp)
    return nil, 'write failed: ' .. tostring(werr or cerr)
  end
  local rok, rerr = os.rename(tmp, path)
  if not rok then
    os.remove(tmp)
    return nil, 'rename failed: ' .. tostring(rerr)
  end
  return true
end

function sys.mkdir_p(path)
  local acc = path:sub(1, 1) == '/' and '' or '.'
  for part in path:gmatch('[^/]+') do
    acc = acc .. '/' .. part
    if not lfs.attributes(acc) then
      local ok, err = lfs.mkdir(acc)
      if not ok and not lfs.attributes(acc) then error(acc .. ': ' .. tostring(err), 0) end
    end
  end
end

function sys.rm_rf(path)
  if path and path ~= '' and path ~= '/' then os.execute('rm -rf ' .. sys.q(path)) end
end

function sys.exists(path) return lfs.attributes(path) ~= nil end

function sys.pid() return ffi.C.getpid() end

local nproc
function sys.nproc()
  if not nproc then
    local ok, out = sys.run({ 'nproc' })
    nproc = ok and tonumber(out:match('%d+')) or 1
  end
  return nproc
end

-- A fresh temporary directory.
function sys.tmpdir(prefix)
  local base = os.getenv('TMPDIR') or '/tmp'
  local out = sys.capture({ 'mktemp', '-d', base .. '/' .. (prefix or 'foldc') .. '.XXXXXX' })
  return (out:gsub('%s+$', ''))
end

return sys
