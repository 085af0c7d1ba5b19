-- backend.runner: how this machine runs a bundle for a --target. Natively when one architecture has
-- a tier this CPU runs; else the family's emulator (with -cpu for an x86 tier this CPU lacks, and
-- the cross compiler for another architecture); one line naming what is missing, and bench's
-- refusal of emulated timings. The host CPU and PATH are stubbed, so every case runs on any machine.
local targets = require 'targets'
local backend = require 'backend'

local SSE41_HOST = 'x86-64-linux-sse41'
local AVX512_HOST = 'x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41'

-- runner for target on a host with host_string and the programs in have (nil: all of them) on PATH
local function runner(target, host_string, have, native)
  local saved_host, saved_path = targets.host, os.getenv('PATH')
  local dir = os.tmpname()
  os.remove(dir)
  assert(os.execute('mkdir ' .. dir) == 0)
  for _, p in ipairs(have or { 'qemu-aarch64-static', 'qemu-x86_64-static', 'aarch64-linux-gnu-gcc' }) do
    assert(os.execute('ln -s /bin/true ' .. dir .. '/' .. p) == 0)
  end
  local ffi = require 'ffi'
  pcall(ffi.cdef, 'int setenv(const char *, const char *, int);')
  targets.host = function() return host_string end
  ffi.C.setenv('PATH', dir, 1)
  local ok, r = pcall(backend.runner, target, native)
  targets.host = saved_host
  ffi.C.setenv('PATH', saved_path, 1)
  os.execute('rm -rf ' .. dir)
  if not ok then error(r, 0) end
  return r
end

describe('backend.runner', function()
  it('runs natively a target this CPU runs, and a multi-architecture list by its native part', function()
    assert.are.same({}, runner('x86-64-avx2', AVX512_HOST).prefix)
    assert.is_nil(runner('x86-64-avx2', AVX512_HOST).cc)
    local r = runner('arm64,x86-64', SSE41_HOST, {})
    assert.are.same({}, r.prefix)
    assert.are.equal('x86', r.T.arch)
  end)

  it('runs arm64 under qemu-aarch64-static with its sysroot, built by the cross compiler', function()
    local r = runner('arm64', AVX512_HOST)
    assert.are.same({ 'qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu' }, r.prefix)
    assert.are.equal('aarch64-linux-gnu-gcc', r.cc)
    assert.are.equal('arm64', r.label)
    assert.are.equal('qemu-aarch64-static', r.under)
  end)

  it('runs an x86 tier this CPU lacks under qemu-x86_64-static -cpu, with the system compiler', function()
    local r = runner('x86-64-avx2', SSE41_HOST)
    assert.are.same({ 'qemu-x86_64-static', '-cpu', 'Haswell' }, r.prefix)
    assert.is_nil(r.cc)
    assert.are.equal('qemu-x86_64-static -cpu Haswell', r.under)
    assert.are.equal('x86-64-avx2', r.label)
  end)

  it('refuses with one line naming what is missing', function()
    local function refused(target, host, have, pattern)
      local ok, err = pcall(runner, target, host, have)
      assert.is_false(ok)
      assert.is_nil(err:find('\n'))
      assert.is_truthy(err:find(pattern, 1, true), err)
    end
    refused('arm64', AVX512_HOST, {}, 'qemu-aarch64-static is not installed (Debian: qemu-user-static)')
    refused('arm64', AVX512_HOST, { 'qemu-aarch64-static' },
      'aarch64-linux-gnu-gcc is not installed (Debian: gcc-aarch64-linux-gnu)')
    refused('x86-64-avx512', SSE41_HOST, nil, 'no emulated CPU has the features of ' .. AVX512_HOST)
    local ok, err = pcall(runner, 'arm64', AVX512_HOST, nil, true)
    assert.is_false(ok)
    assert.is_truthy(err:find('timings under an emulator mean nothing', 1, true), err)
  end)
end)
