-- A description is data, not code: every escape from the sandbox (compiler/zoo.lua) fails with one
-- line naming the description's file and line, and leaves no side effect behind; runaway loops and
-- memory bombs stop at their bound (compiler/limits.lua); bad parameters are refused by name.
local zoo = require 'zoo'
local limits = require 'limits'

local dir = os.tmpname()
os.remove(dir)
assert(require('lfs').mkdir(dir))
local marker = dir .. '/PWNED'

-- Write a description whose build() runs `body` (or, with at_load, runs it when loaded).
local function description(name, body, at_load)
  local path = dir .. '/' .. name .. '.lua'
  local f = assert(io.open(path, 'w'))
  if at_load then
    f:write('local nn = require "nn"\n', body, '\nreturn { configs = { m = { input = { 1, 3, 8, 8 },',
      ' build = function() return nn.Conv2d(3, 4, 3) end } } }\n')
  else
    f:write('local nn = require "nn"\nreturn { configs = { m = { input = { 1, 3, 8, 8 }, build = function(cfg)\n',
      body, '\nreturn nn.Conv2d(3, 4, 3) end } } }\n')
  end
  f:close()
  return path
end

-- The one-line error of loading and tracing `path`.
local function failure(path)
  local ok, err = pcall(function() return zoo.trace(zoo.resolve(path)) end)
  assert.is_false(ok, path .. ' was accepted')
  assert.equal('string', type(err))
  assert.is_nil(err:find('\n'), 'more than one line: ' .. err)
  assert.is_nil(err:find('compiler/', 1, true), 'names the compiler source: ' .. err)
  return err
end

-- The case fails at `line` of its file (nil: the file), the message holds `want`, and nothing leaked out.
local function refused(name, body, line, want, at_load)
  local path = description(name, body, at_load)
  local err = failure(path)
  local at = path .. ':' .. (line and (line .. ':') or '')
  assert.truthy(err:find(at, 1, true), 'no ' .. at .. ' in: ' .. err)
  if want then assert.truthy(err:find(want, 1, true), 'no "' .. want .. '" in: ' .. err) end
  assert.is_nil(io.open(marker), name .. ' created ' .. marker)
  assert.equal(string, getmetatable('').__index)
  assert.truthy(jit.status())
  return err
end

local function with_limit(name, value, fn)
  local old = limits.get(name)
  limits.set(name .. '=' .. value)
  local ok, err = pcall(fn)
  limits.set(name .. '=' .. old)
  if not ok then error(err, 0) end
end

describe('description sandbox', function()
  after_each(function() os.remove(marker) end)

  it('has no os, io, ffi, debug, jit, package, load*, dofile or collectgarbage', function()
    local touch = '"touch ' .. marker .. '"'
    refused('os_execute', 'os.execute(' .. touch .. ')', 3, "global 'os'")
    refused('os_exit', 'os.exit(0)', 3, "global 'os'")
    refused('io_popen', 'io.popen(' .. touch .. ')', 3, "global 'io'")
    refused('io_open', 'io.open("' .. marker .. '", "w"):write("x")', 3, "global 'io'")
    refused('require_ffi', 'local ffi = require "ffi"', 3, 'require "ffi"')
    refused('require_os', 'require("os").execute(' .. touch .. ')', 3, 'require "os"')
    refused('package_loaded', 'package.loaded.ffi.C.system(' .. touch .. ')', 3, "global 'package'")
    refused('debug', 'debug.sethook()', 3, "global 'debug'")
    refused('jit', 'jit.on()', 3, "global 'jit'")
    refused('gc', 'collectgarbage("stop")', 3, "global 'collectgarbage'")
    refused('loadstring', 'loadstring("os.exit(0)")()', 3, "global 'loadstring'")
    refused('load', 'load(string.char(27, 76, 74, 2))()', 3, "global 'load'")
    refused('dofile', 'dofile("/etc/passwd")', 3, "global 'dofile'")
    refused('setfenv', 'setfenv(1, {})', 3, "global 'setfenv'")
    refused('getfenv', 'getfenv(0).os.exit(0)', 3, "global 'getfenv'")
    refused('newproxy', 'newproxy(true)', 3, "global 'newproxy'")
    refused('at_load', 'os.execute(' .. touch .. ')', 2, "global 'os'", true)
  end)

  it('keeps string.dump and the real string table out of reach', function()
    refused('string_dump', 'string.dump(print or function() end)', 3, 'dump')
    refused('method_dump', '("").dump(function() end)', 3, 'dump')
    refused('string_mt', 'getmetatable("").__index.dump(function() end)', 3, 'index a nil value')
    refused('string_mt_rep', 'getmetatable("").__index.rep = nil', 3, 'index a nil value')
  end)

  it('protects foldc metatables and the DSL', function()
    refused('nn_mt', 'setmetatable(nn, nil)', 3, 'protected metatable')
    refused('nn_write', 'nn.Conv2d = nil', 3, 'nn is read-only')
    refused('nn_record', 'nn.record("x", nil, "relu", {}, {}, {})', 3, 'nn.record is not an op')
    refused('module_mt', 'setmetatable(nn.ReLU(), {})', 3, 'protected metatable')
    refused('tensor_forge', [[
  local m = nn.Module('M')
  function m:forward(x) return { shape = { 1, 3, 8, 8 } } end
  do return m end]], 3, 'forward() result is not a tensor')
    -- a handle's shape is the description's own copy: changing it changes nothing in the graph
    local path = description('tensor_shape', [[
  local m = nn.Module('M')
  m.conv = nn.Conv2d(3, 4, 3)
  function m:forward(x) x.shape[2] = 5; x.shape[3] = 0; return self.conv(x) end
  do return m end]])
    local graph = zoo.trace(zoo.resolve(path))
    assert.same({ 1, 3, 8, 8 }, graph.input.shape)
    assert.same({ 1, 4, 6, 6 }, graph.outputs[1].shape)
  end)

  it('refuses bytecode files', function()
    local path = dir .. '/bytecode.lua'
    local f = assert(io.open(path, 'wb'))
    f:write(string.dump(function() return { configs = {} } end))
    f:close()
    local err = failure(path)
    assert.truthy(err:find(path .. ': is Lua bytecode', 1, true), err)
  end)

  it('turns non-string errors into a line naming the file', function()
    refused('error_table', 'error({})', 3, 'raised a non-string error (table)')
    refused('error_tostring', 'error(setmetatable({}, { __tostring = function() os.exit(0) end }))', 3,
      'raised a non-string error (table)')
    refused('error_function', 'error(function() end)', 3, 'raised a non-string error (function)')
    refused('error_level0', 'error("boom", 0)', 3, 'boom')
    refused('error_lines', 'error("a\\nb\\nc")', 3, 'a b c')
  end)

  it('stops runaway loops at the instruction budget, whatever catches the error', function()
    with_limit('description_mega_instructions', 20, function()
      local t0 = os.clock()
      refused('loop', 'while true do end', 3, 'ran over its budget of 20 M instructions')
      refused('loop_pcall', 'while true do pcall(function() while true do end end) end', 3, 'ran over its budget')
      refused('loop_xpcall', 'while true do xpcall(function() while true do end end, function() while true do end end) end',
        3, 'ran over its budget')
      refused('loop_coroutine', [[
  local co = coroutine.wrap(function() while true do pcall(coroutine.yield) end end)
  while true do pcall(co) end]], 3, 'ran over its budget')
      refused('loop_resume', 'while true do coroutine.resume(coroutine.create(function() while true do end end)) end', 3,
        'ran over its budget')
      refused('loop_at_load', 'local i = 0 while true do i = i + 1 end', 2, 'ran over its budget', true)
      refused('loop_forward', [[
  local m = nn.Module('M')
  function m:forward(x) while true do end end
  do return m end]], 4, 'ran over its budget')
      assert.truthy(os.clock() - t0 < 5)
    end)
  end)

  it('stops memory bombs at memory_gib', function()
    with_limit('memory_gib', 0.25, function()
      refused('rep_bomb', 'local s = ("xy"):rep(2 ^ 30)', 3, 'string.rep of 2 GiB is over the limit memory_gib=0.25')
      refused('string_rep_bomb', 'local s = string.rep("xy", 2 ^ 30)', 3, 'string.rep of 2 GiB is over the limit')
      refused('concat_bomb', [[
  local s, t = string.rep("x", 2 ^ 24), {}
  for i = 1, 1e6 do t[i] = s .. i end]], nil, 'ran over the memory it may use')
      refused('memory_pcall', [[
  local s, t = string.rep("x", 2 ^ 24), {}
  while true do pcall(function() t[#t + 1] = s .. #t end) end]], nil, 'ran over the memory it may use')
    end)
  end)

  it('refuses patterns that could backtrack for ever in C', function()
    refused('pattern_bomb', 'local s = ("a"):rep(5000):find(("a*"):rep(20) .. "b")', 3, 'could run for ever')
  end)

  it('still serves nn, nn.X and the zoo models', function()
    local path = description('requires', [[
  local pit, resnet, acb = require 'models.pit', require 'models.resnet', require 'nn.acb'
  assert(type(pit) == 'table' and type(resnet) == 'table' and acb.Conv2d == nn.Conv2d)
  assert(("abc"):rep(2) == "abcabc" and string.format("%d", 3) == "3" and math.floor(2.5) == 2)]])
    local graph = zoo.trace(zoo.resolve(path))
    assert.equal(1, #graph.nodes)
    refused('require_path', 'require "models.../../x"', 3, 'require "models.../../x"')
  end)

  it('refuses bad parameters by name and value at the description line', function()
    refused('kernel0', 'local m = nn.Conv2d(3, 4, 0)', 3, 'Conv2d kernel_size must be a positive integer, got 0')
    refused('stride0', 'local m = nn.Conv2d(3, 4, 3, { stride = 0 })', 3, 'Conv2d stride must be a positive integer, got 0')
    refused('dilation0', 'local m = nn.Conv2d(3, 4, 3, { dilation = { 1, 0 } })', 3, 'Conv2d dilation must be a positive integer, got 0')
    refused('padding_neg', 'local m = nn.Conv2d(3, 4, 3, { padding = -1 })', 3, 'Conv2d padding must be a non-negative integer, got -1')
    refused('groups', 'local m = nn.Conv2d(3, 4, 3, { groups = 2 })', 3, 'groups=2 must divide')
    refused('channels', 'local m = nn.Conv2d(3, 1e9, 3); do return m end', 3, 'weight [1000000000x3x3x3]: needs 100.6 GiB, over the limit memory_gib')
    refused('channels_frac', 'local m = nn.Conv2d(3, 4.5, 3)', 3, 'out_channels must be a positive integer, got 4.5')
    refused('pool_stride0', 'local m = nn.MaxPool2d(2, { stride = 0 }); do return m end', 3, 'pool stride must be a positive integer, got 0')
    refused('eps', 'local m = nn.BatchNorm2d(3, { eps = 0 / 0 })', 3, 'BatchNorm2d eps must be a positive finite number, got nan')
    refused('key', 'local m = nn.Module("M"); m:param("a b", { 3 }); function m:forward(x) return x end; do return m end',
      3, 'parameter name must be a name')
    for input, want in pairs({ ['1, 3, 100000, 100000'] = 'input [1x3x100000x100000]: needs 111.8 GiB, over the limit memory_gib',
                               ['1, 3, 0, 8'] = 'input dimension 3 must be a positive integer, got 0',
                               ['1, 3'] = 'input must be {1, C, H, W} (or tokens {1, N, D}), got {1, 3}' }) do
      local path = description('input', 'do end')
      local f = assert(io.open(path)); local text = f:read('*a'):gsub('1, 3, 8, 8', input); f:close()
      f = assert(io.open(path, 'w')); f:write(text); f:close()
      local err = failure(path)
      assert.truthy(err:find(path .. ': config "m": ' .. want, 1, true), err)
    end
  end)
end)
