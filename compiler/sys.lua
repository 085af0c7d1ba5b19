-- Processes and files: the few operating-system services the compiler needs, in one place.
-- Commands get their arguments as argv lists, each word shell-quoted (sys.q): no user text is ever
-- read by a shell as code. Scratch files and folders are named <path>.tmp.<pid> (sys.scratch), so
-- those of dead processes can be swept (sys.sweep); child commands that must not outlive foldc run
-- through sys.run_tied.
local ffi = require 'ffi'
local lfs = require 'lfs'

ffi.cdef [[ int getpid(void); ]]
-- libc, under names of our own (other modules may declare the same functions)
pcall(ffi.cdef, [[
  typedef struct { unsigned long val[16]; } foldc_sigset_t;
  typedef struct { long tv_sec; long tv_nsec; } foldc_sys_timespec;
  typedef void (*foldc_sighandler_t)(int);
  int foldc_fork(void) __asm__("fork");
  int foldc_setpgid(int pid, int pgid) __asm__("setpgid");
  int foldc_kill(int pid, int sig) __asm__("kill");
  int foldc_waitpid(int pid, int *status, int options) __asm__("waitpid");
  int foldc_pipe2(int fds[2], int flags) __asm__("pipe2");
  int foldc_dup2(int oldfd, int newfd) __asm__("dup2");
  int foldc_open(const char *path, int flags, int mode) __asm__("open");
  int foldc_close(int fd) __asm__("close");
  long foldc_write(int fd, const char *buf, unsigned long n) __asm__("write");
  int foldc_execvp(const char *file, const char **argv) __asm__("execvp");
  void foldc_exit(int status) __asm__("_exit");
  int foldc_sigemptyset(foldc_sigset_t *set) __asm__("sigemptyset");
  int foldc_sigaddset(foldc_sigset_t *set, int sig) __asm__("sigaddset");
  int foldc_sigprocmask(int how, const foldc_sigset_t *set, foldc_sigset_t *old) __asm__("sigprocmask");
  int foldc_sigtimedwait(const foldc_sigset_t *set, void *info, const foldc_sys_timespec *t) __asm__("sigtimedwait");
  foldc_sighandler_t foldc_signal(int sig, foldc_sighandler_t handler) __asm__("signal");
  int foldc_flock(int fd, int op) __asm__("flock");
  int foldc_access(const char *path, int mode) __asm__("access");
  int foldc_poll(void *fds, unsigned long n, int timeout_ms) __asm__("poll");
  char *foldc_strerror(int errnum) __asm__("strerror");
]])
local C = ffi.C
local O_WRONLY, O_CREAT, O_TRUNC, O_CLOEXEC = 1, 64, 512, 524288
local SIGHUP, SIGINT, SIGKILL, SIGTERM, SIGCHLD = 1, 2, 9, 15, 17
local SIG_BLOCK, SIG_SETMASK, WNOHANG, ESRCH, EINTR, EWOULDBLOCK = 0, 2, 1, 3, 4, 11
local LOCK_EX, LOCK_NB = 2, 4
local SIGNAL_NAMES = { [SIGHUP] = 'SIGHUP', [SIGINT] = 'SIGINT', [SIGTERM] = 'SIGTERM' }

local sys = {}

local function strerror() return ffi.string(C.foldc_strerror(ffi.errno())) end

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
  if path and path ~= '' and path ~= '/' then os.execute('rm -rf -- ' .. sys.q(path)) end
end

function sys.exists(path) return lfs.attributes(path) ~= nil end

function sys.pid() return ffi.C.getpid() end

-- This process's scratch name for path: path.tmp.<pid>, or path.tmp.<pid>.<tag>.
function sys.scratch(path, tag)
  return path .. '.tmp.' .. sys.pid() .. (tag and ('.' .. tag) or '')
end

local function alive(pid)
  return C.foldc_kill(pid, 0) == 0 or ffi.errno() ~= ESRCH
end

-- Remove the scratch entries (sys.scratch) in folder dir left by processes that no longer run;
-- with prefix, only those of dir/prefix.
function sys.sweep(dir, prefix)
  local ok, iter, state = pcall(lfs.dir, dir)
  if not ok then return end
  local me = sys.pid()
  for name in iter, state do
    local base, pid, rest = name:match('^(.-)%.tmp%.(%d+)(.*)$')
    pid = tonumber(pid)
    if base and (prefix == nil or base == prefix) and (rest == '' or rest:match('^%.[%w_]+$'))
        and pid ~= me and pid <= 4194304 and not alive(pid) then
      sys.rm_rf(dir .. '/' .. name)
    end
  end
end

-- Run fn() holding an exclusive flock(2) on the existing folder dir (released when fn returns or
-- raises); waits up to `seconds` for another holder, then raises `<what>: still locked by ...`.
function sys.locked(dir, seconds, what, fn)
  local fd = C.foldc_open(dir, O_CLOEXEC, 0)
  if fd < 0 then error(what .. ': cannot open ' .. dir .. ' to lock it: ' .. strerror(), 0) end
  local tries = 0
  while C.foldc_flock(fd, LOCK_EX + LOCK_NB) ~= 0 do
    local e = ffi.errno()
    if (e ~= EWOULDBLOCK and e ~= EINTR) or tries >= seconds * 20 then
      local why = (e == EWOULDBLOCK or e == EINTR)
        and string.format('still locked by another foldc after %d s', seconds) or strerror()
      C.foldc_close(fd)
      error(what .. ': ' .. why, 0)
    end
    C.foldc_poll(nil, 0, 50)
    tries = tries + 1
  end
  local ok, res = pcall(fn)
  C.foldc_close(fd)
  if not ok then error(res, 0) end
  return res
end

-- Whether this process may write into (and enter) the folder at path.
function sys.writable(path)
  return C.foldc_access(path, 3) == 0
end

local function c_argv(list, keep)
  local argv = ffi.new('const char *[?]', #list + 1)
  for i, s in ipairs(list) do
    s = tostring(s)
    local c = ffi.new('char[?]', #s + 1, s)
    keep[#keep + 1] = c
    argv[i - 1] = c
  end
  return argv
end

local function sigset(list)
  local set = ffi.new('foldc_sigset_t')
  C.foldc_sigemptyset(set)
  for _, s in ipairs(list) do C.foldc_sigaddset(set, s) end
  return set
end

-- fork and exec argv with an empty signal mask; in the child, setup() runs first (only C calls on
-- prepared values), and the child never returns into Lua. Returns the pid.
local function spawn(argv, setup)
  local empty, keep = sigset({}), {}
  local cargv = c_argv(argv, keep)
  local pid = C.foldc_fork()
  if pid == 0 then
    if not pcall(setup) then C.foldc_exit(127) end
    C.foldc_sigprocmask(SIG_SETMASK, empty, nil)
    C.foldc_execvp(cargv[0], cargv)
    C.foldc_exit(127)
  end
  if pid < 0 then error('cannot start ' .. argv[1] .. ': ' .. strerror(), 0) end
  return pid
end

local function exit_code(status)
  local s = status[0]
  if s % 128 == 0 then return math.floor(s / 256) % 256 end
  return 128 + s % 128
end

-- The watchdog: holds the read end of a pipe only foldc writes to. A line means foldc is done; end
-- of file means foldc died: the command's process group is killed (and gone) first. Either way the
-- debris is removed. Values reach it as arguments, never as script text.
local WATCHDOG = 'if ! read -r _; then kill -9 "-$1" 2>/dev/null; n=0; '
  .. 'while kill -0 "-$1" 2>/dev/null && [ $n -lt 100 ]; do sleep 0.05; n=$((n+1)); done; fi; '
  .. 'shift; rm -rf -- "$@"'

-- Run argv like sys.run (returns ok, output, exit code), tied to this process: in a process group
-- of its own, with its output in the file opts.log, and with a watchdog that kills the group if
-- foldc dies, even by SIGKILL. SIGINT, SIGTERM or SIGHUP while it runs kill the group too and
-- raise `interrupted by SIG...`. The paths in opts.debris (the log among them, if it should go)
-- are removed when it ends, however it ends.
function sys.run_tied(argv, opts)
  local debris = opts.debris or {}
  local block, old = sigset({ SIGINT, SIGTERM, SIGHUP, SIGCHLD }), ffi.new('foldc_sigset_t')
  local fds, status = ffi.new('int[2]'), ffi.new('int[1]')
  local log = C.foldc_open(opts.log, O_WRONLY + O_CREAT + O_TRUNC + O_CLOEXEC, 420)
  if log < 0 or C.foldc_pipe2(fds, O_CLOEXEC) ~= 0 then
    local why = opts.log .. ': ' .. strerror()
    if log >= 0 then C.foldc_close(log) end
    for _, p in ipairs(debris) do sys.rm_rf(p) end
    error(why, 0)
  end
  C.foldc_sigprocmask(SIG_BLOCK, block, old)
  local function fail(msg)
    C.foldc_close(fds[1])
    C.foldc_sigprocmask(SIG_SETMASK, old, nil)
    for _, p in ipairs(debris) do sys.rm_rf(p) end
    error(msg, 0)
  end
  local ok, cmd = pcall(spawn, argv, function()
    C.foldc_setpgid(0, 0)
    C.foldc_dup2(log, 1)
    C.foldc_dup2(log, 2)
  end)
  C.foldc_close(log)
  if not ok then C.foldc_close(fds[0]); fail(cmd) end
  C.foldc_setpgid(cmd, cmd)
  local watch_argv = { 'sh', '-c', WATCHDOG, 'foldc-watchdog', cmd }
  for _, p in ipairs(debris) do watch_argv[#watch_argv + 1] = p end
  local ignore = ffi.cast('foldc_sighandler_t', 1)
  local wok, watchdog = pcall(spawn, watch_argv, function()
    C.foldc_dup2(fds[0], 0)
    C.foldc_signal(SIGINT, ignore)
    C.foldc_signal(SIGTERM, ignore)
    C.foldc_signal(SIGHUP, ignore)
  end)
  C.foldc_close(fds[0])
  if not wok then
    C.foldc_kill(-cmd, SIGKILL)
    C.foldc_waitpid(cmd, status, 0)
    fail(watchdog)
  end
  local signal
  local wait = ffi.new('foldc_sys_timespec', 0, 200000000)
  status[0] = 255 * 256 -- what is reported if the command cannot be waited for
  while true do
    local r = C.foldc_waitpid(cmd, status, WNOHANG)
    if r == cmd or (r < 0 and ffi.errno() ~= EINTR) then break end
    signal = SIGNAL_NAMES[C.foldc_sigtimedwait(block, nil, wait)]
    if signal then
      C.foldc_kill(-cmd, SIGKILL)
      C.foldc_waitpid(cmd, status, 0)
      break
    end
  end
  local out = not signal and sys.read_bytes(opts.log) or ''
  if not signal then C.foldc_write(fds[1], '\n', 1) end
  C.foldc_close(fds[1])
  C.foldc_waitpid(watchdog, nil, 0)
  C.foldc_sigprocmask(SIG_SETMASK, old, nil)
  if signal then error('interrupted by ' .. signal, 0) end
  local code = exit_code(status)
  return code == 0, out, code
end

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
