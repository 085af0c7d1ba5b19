-- The model zoo and description loading: a model is named either by a zoo name ("resnet50") or by
-- a description file with an optional config ("my_net.lua:small"), either followed by settings of
-- config values (":num_classes=10,img=384"; zoo.resolve). A description file returns a table
-- { family = ..., configs = { name = { build = fn, input = {1,C,H,W}, ...args } } }, with what the
-- weights determine declared as data (from_weights, training_only, size_key: see declarations).
--
-- A description is data, not code: its file (Lua source text only, never bytecode) runs in a sandbox,
-- and so does every call into it (its build functions, and the forward functions nn.trace calls).
-- The sandbox holds the DSL (`require 'nn'`, `require 'nn.X'`: the read-only nn; `require
-- 'models.X'`: a zoo description, loaded into the same sandbox) and the pure parts of the standard
-- library: math (without random), string (without dump; patterns that could backtrack for ever in
-- C are refused), table, coroutine, bit and the base functions that reach nothing outside (no os,
-- io, ffi, debug, jit, package, load*, dofile, print, collectgarbage, getfenv/setfenv;
-- getmetatable sees the metatables of tables only, and foldc's own are protected). A run stops
-- with the description's file and line when it exceeds description_mega_instructions (a count hook,
-- with the JIT off, whose error no pcall inside the description can swallow) or, on Linux, memory_gib
-- more memory (an address-space limit while it runs). What comes out is data: the description's
-- table is copied without metatables, and the traced graph holds plain copies only (nn.lua).
local lfs = require 'lfs'
local ffi = require 'ffi'
local nn = require 'nn'
local limits = require 'limits'

local zoo = {}

local root = os.getenv('FOLDC_ROOT') or '.'
zoo.models_dir = root .. '/models'

local compiler_dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'
local MAX_FILE_BYTES = 16 * 2 ^ 20   -- a description is a few KB of text
local HOOK_EVERY = 10000             -- instructions between two looks at the budget

local function copy(t, except)
  local c = {}
  for k, v in pairs(t) do
    if not (except and except[k]) then c[k] = v end
  end
  return c
end

---------------------------------------------------------------------------------------------------
-- One run of description code at a time: `run` is its state (files, budget, the reason it stopped).

local run = nil

-- "FILE:LINE" of the innermost description frame from `level` up, else the description's file.
local function description_where(level)
  for l = level, 200 do
    local info = debug.getinfo(l, 'Sl')
    if not info then break end
    local src = info.source
    if src:sub(1, 1) == '@' and run.files[src:sub(2)] then return src:sub(2) .. ':' .. (info.currentline or 0) end
  end
  return run.file
end

-- Memory errors reach no handler: they are placed at the line the budget hook saw last.
local function over_memory(where)
  return string.format('%s: the description ran over the memory it may use (memory_gib=%g GiB above foldc\'s own; '
    .. '--limit memory_gib=N)', where, limits.get('memory_gib'))
end

-- After a pcall inside the description: a stop (budget, memory) goes on up, whatever caught it.
local function unless_stopped(ok, ...)
  if not ok and (...) == 'not enough memory' then run.stop = run.stop or over_memory(run.last) end
  if run.stop then error(run.stop, 0) end
  return ok, ...
end

local function budget_hook()
  run.left = run.left - 1
  run.last = description_where(3)
  if run.left < 0 then
    local n = limits.get('description_mega_instructions')
    run.stop = run.stop or string.format('%s: the description ran over its budget of %g M instructions '
      .. '(--limit description_mega_instructions=N)', description_where(3), n)
    error(run.stop, 0)
  end
end

-- Lua patterns backtrack in C, where the count hook cannot stop them: a subject of n characters and
-- q repetition items may take n^(q+1) steps. Refused beyond 1e9.
local gsub = string.gsub
local function guarded(fn)
  return function(s, p, ...)
    if type(s) == 'string' and type(p) == 'string' then
      local _, q = gsub(gsub(p, '%%.', ''), '[%*%+%-%?]', '')
      if (#s + 1) ^ (q + 1) > 1e9 then
        error(string.format('a pattern with %d repetitions on a string of %d characters could run for ever', q, #s), 2)
      end
    end
    return fn(s, p, ...)
  end
end

local safe_string = copy(string, { dump = true })
for _, name in ipairs({ 'find', 'match', 'gmatch', 'gsub' }) do safe_string[name] = guarded(string[name]) end

-- string.rep refuses at once (with the line) what the memory bound would refuse later.
function safe_string.rep(s, n, sep)
  if type(s) == 'string' and type(n) == 'number' then
    local gib = (#s + (type(sep) == 'string' and #sep or 0)) * n / 2 ^ 30
    if gib > limits.get('memory_gib') then
      error(string.format('string.rep of %.4g GiB is over the limit memory_gib=%g (--limit memory_gib=N)',
        gib, limits.get('memory_gib')), 2)
    end
  end
  return string.rep(s, n, sep)
end

-- The address-space limit while description code runs (Linux): what the process uses + memory_gib.
pcall(ffi.cdef, [[
struct foldc_rlimit { uint64_t cur, max; };
int getrlimit(int resource, struct foldc_rlimit *rlim);
int setrlimit(int resource, const struct foldc_rlimit *rlim);
]])
local RLIMIT_AS = 9

local function bound_memory()
  if ffi.os ~= 'Linux' then return nil end
  local f = io.open('/proc/self/status', 'r')
  local kb = f and string.match(f:read('*a'), 'VmSize:%s*(%d+) kB')
  if f then f:close() end
  if not kb then return nil end
  local old = ffi.new('struct foldc_rlimit')
  if ffi.C.getrlimit(RLIMIT_AS, old) ~= 0 then return nil end
  local want = ffi.new('struct foldc_rlimit', old)
  local bytes = tonumber(kb) * 1024 + limits.get('memory_gib') * 2 ^ 30
  if bytes < tonumber(old.cur) then want.cur = bytes end
  ffi.C.setrlimit(RLIMIT_AS, want)
  return old
end

-- The environment of one description file and the models it requires.
local function sandbox()
  local env = {}
  for _, k in ipairs({ 'assert', 'error', 'ipairs', 'next', 'pairs', 'rawequal', 'rawget', 'rawset',
                       'select', 'tonumber', 'tostring', 'type', 'unpack', 'setmetatable', '_VERSION' }) do
    env[k] = _G[k]
  end
  env.getmetatable = function(v)
    if type(v) == 'table' then return getmetatable(v) end
    return nil
  end
  env.pcall = function(f, ...) return unless_stopped(pcall(f, ...)) end
  -- (an error raised by the hook reaches the handler while LuaJIT still counts the hook as running,
  -- so no hook would stop that handler: a stopped run skips it)
  env.xpcall = function(f, h, ...)
    return unless_stopped(xpcall(f, function(e)
      if run.stop then return e end
      return h(e)
    end, ...))
  end
  env.math = copy(math, { random = true, randomseed = true })
  env.string = copy(safe_string)
  env.table = copy(table)
  env.bit = copy(bit)
  env.coroutine = copy(coroutine)
  env.coroutine.resume = function(co, ...) return unless_stopped(coroutine.resume(co, ...)) end
  env._G = env
  local nn_view = nn.for_descriptions()
  local loaded, loading = {}, {}
  env.require = function(name)
    if name == 'nn' then return nn_view end
    if type(name) ~= 'string' then error('require: no module ' .. tostring(type(name)), 2) end
    local ext = name:match('^nn%.([%w_]+)$')
    if ext and lfs.attributes(compiler_dir .. '/nn/' .. ext .. '.lua', 'mode') == 'file' then return nn_view end
    local model = name:match('^models%.([%w_]+)$')
    local path = model and (zoo.models_dir .. '/' .. model .. '.lua')
    if not path or lfs.attributes(path, 'mode') ~= 'file' then
      error('require "' .. name:sub(1, 60) .. '": a description may require nn, nn.X and models.X (a zoo file) only', 2)
    end
    if loading[name] then error('require "' .. name .. '": a loop of requires', 2) end
    if loaded[name] == nil then
      loading[name] = true
      loaded[name] = zoo.chunk(path, env)()
      if loaded[name] == nil then loaded[name] = true end
      loading[name] = nil
    end
    return loaded[name]
  end
  return env
end

-- A description file's text as a chunk in `env`: text only, of a sane size; errors name the file.
function zoo.chunk(path, env)
  local mode, size = lfs.attributes(path, 'mode'), lfs.attributes(path, 'size')
  if mode ~= 'file' then error(path .. ': not a description file (' .. tostring(mode or 'missing') .. ')', 0) end
  if size > MAX_FILE_BYTES then error(path .. ': ' .. size .. ' bytes, too large for a description', 0) end
  local f = assert(io.open(path, 'rb'))
  local text = f:read('*a')
  f:close()
  if text:sub(1, 1) == '\27' then error(path .. ': is Lua bytecode; a description must be Lua source', 0) end
  local chunk, err = loadstring(text, '@' .. path)
  if not chunk then error(err, 0) end
  if run then run.files[path] = true end
  return setfenv(chunk, env)
end

-- One line from whatever the description raised, placed at its file and line.
local function message(err)
  if type(err) ~= 'string' then
    return description_where(3) .. ': raised a non-string error (' .. type(err) .. ')'
  end
  local sub, match = string.sub, string.match
  if #err > 500 then err = sub(err, 1, 500) .. '...' end
  err = string.gsub(err, '%c+', ' ')
  -- positioned in the compiler's own source, or not positioned: the description line instead
  local file, rest = match(err, '^(.-):%d+: (.*)$')
  if file and sub(file, 1, #compiler_dir) == compiler_dir then return description_where(3) .. ': ' .. rest end
  for f in pairs(run.files) do
    if sub(err, 1, #f + 1) == f .. ':' then return err end
  end
  if match(err, '^[^%s]+:%d+: ') then return err end
  return description_where(3) .. ': ' .. err
end

local function handler(err)
  debug.sethook()
  if run.stop then return run.stop end
  return message(err)
end

-- Run fn(...) as description code of `file` under the sandbox's limits; errors are one line.
function zoo.run(file, fn, ...)
  if run then return fn(...) end
  run = { file = file, files = { [file] = true }, last = file,
          left = math.ceil(limits.get('description_mega_instructions') * 1e6 / HOOK_EVERY) }
  local jit_on = jit.status()
  jit.off()
  jit.flush()
  local memory = bound_memory()
  local string_mt = debug.getmetatable('')
  local string_index = string_mt.__index
  string_mt.__index = safe_string
  nn.running = run
  debug.sethook(budget_hook, '', HOOK_EVERY)
  local result = { xpcall(fn, handler, ...) }
  debug.sethook()
  nn.running = nil
  if memory then ffi.C.setrlimit(RLIMIT_AS, memory) end
  string_mt.__index = string_index
  if jit_on then jit.on() end
  local stop, last = run.stop, run.last
  run = nil
  if not result[1] then
    local err = result[2]
    if err == 'not enough memory' then err = stop or over_memory(last) end
    error(err, 0)
  end
  return unpack(result, 2, table.maxn(result))
end

-- A copy of the description's table as data: strings, numbers, booleans, functions (called only
-- through zoo.run) and tables without metatables.
local function data(v, path, memo)
  local t = type(v)
  if t ~= 'table' then
    if t == 'userdata' or t == 'thread' or t == 'cdata' then error(path .. ': the description returned a ' .. t, 0) end
    return v
  end
  if memo[v] then return memo[v] end
  local c = {}
  memo[v] = c
  for k, x in next, v do c[data(k, path, memo)] = data(x, path, memo) end
  return c
end

-- Load a description file in its sandbox; errors name the file and line.
function zoo.load_file(path)
  local desc = data(zoo.run(path, function() return zoo.chunk(path, sandbox())() end), path, {})
  if type(desc) ~= 'table' or type(desc.configs) ~= 'table' then
    error(path .. ': a description must return a table with a "configs" field', 0)
  end
  if desc.family ~= nil and type(desc.family) ~= 'string' then
    error(path .. ': family must be a string, got a ' .. type(desc.family), 0)
  end
  for name, cfg in pairs(desc.configs) do
    if type(name) ~= 'string' or not name:match('^[%w_%-%.]+$') or type(cfg) ~= 'table' then
      error(path .. ': configs must map names (letters, digits, _, -, .) to tables, got ' .. type(name)
        .. ' ' .. (type(name) == 'string' and name:sub(1, 60) or '') .. ' -> ' .. type(cfg), 0)
    end
  end
  return desc
end

-- All zoo configs: list of { name, family, file, config }, sorted by file then name.
function zoo.list()
  local files = {}
  for f in lfs.dir(zoo.models_dir) do
    if f:match('%.lua$') then files[#files + 1] = f end
  end
  table.sort(files)
  local out = {}
  for _, f in ipairs(files) do
    local path = zoo.models_dir .. '/' .. f
    local desc = zoo.load_file(path)
    local names = {}
    for name in pairs(desc.configs) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      out[#out + 1] = zoo.entry(desc, name, path, desc.family or f:gsub('%.lua$', ''))
    end
  end
  return out
end

-- What a description declares about its weights, as plain data (config fields, else family fields):
--   from_weights = { KEY = { key = 'fc.weight', dim = 1, minus =, root =, times =, plus = } }, or
--     { key = 'dist_token', present = 2, absent = 1 } (the value by the key's presence): the
--     config value KEY is ((size of dim `dim` of the checkpoint tensor `key`) - minus)^(1/root) * times
--     + plus (minus/times/plus: numbers or names of config values; root: 1 or 2), when that is whole;
--     other_with = SETTING: another value may be given when that setting is set (not false/'none'),
--     the description then adapting the weights (e.g. resampling pos_embed); checkpoint_as = NAME: the
--     config value the checkpoint's own value goes to, in every case;
--   training_only = { 'AuxLogits.', ... }: key prefixes only training uses (accepted, reported);
--   size_key = 'img': the config value the input's height and width are (square inputs);
--   width_key = 'img_w' (with size_key): the config value the width is, when it may differ (unset:
--     the width is size_key's value).
local function declarations(desc, cfg, file, name)
  local where = file .. ': config "' .. name .. '"'
  local fw, prefixes, size_key = cfg.from_weights or desc.from_weights, cfg.training_only or desc.training_only, cfg.size_key
  local width_key = cfg.width_key
  local function operand(v) return v == nil or type(v) == 'number' or (type(v) == 'string' and v:match('^[%a_][%w_]*$')) end
  if fw ~= nil then
    if type(fw) ~= 'table' then error(where .. ': from_weights must be a table', 0) end
    for k, d in pairs(fw) do
      local presence = type(d) == 'table' and d.dim == nil and type(d.present) == 'number' and type(d.absent) == 'number'
      if type(k) ~= 'string' or type(d) ~= 'table' or type(d.key) ~= 'string'
          or not (presence or (type(d.dim) == 'number' and d.dim >= 1 and d.dim % 1 == 0))
          or not (d.root == nil or d.root == 1 or d.root == 2)
          or not (operand(d.minus) and operand(d.times) and operand(d.plus))
          or (d.other_with ~= nil and not (type(d.other_with) == 'string' and operand(d.other_with)))
          or (d.checkpoint_as ~= nil and not (type(d.checkpoint_as) == 'string' and operand(d.checkpoint_as))) then
        error(where .. ': from_weights.' .. tostring(k) .. ' must be { key = NAME, dim = N, minus/times/plus = number '
          .. 'or config name, root = 1|2, other_with = SETTING, checkpoint_as = NAME } or { key = NAME, present = N, '
          .. 'absent = N }', 0)
      end
    end
  end
  if prefixes ~= nil then
    if type(prefixes) ~= 'table' then error(where .. ': training_only must be a list of key prefixes', 0) end
    for _, p in pairs(prefixes) do
      if type(p) ~= 'string' or p == '' then error(where .. ': training_only must be a list of key prefixes', 0) end
    end
  end
  if size_key ~= nil and (type(size_key) ~= 'string' or type(cfg[size_key]) ~= 'number') then
    error(where .. ': size_key must name a number in the config', 0)
  end
  if width_key ~= nil and (size_key == nil or type(width_key) ~= 'string' or not width_key:match('^[%a_][%w_]*$')
      or width_key == size_key or not (cfg[width_key] == nil or type(cfg[width_key]) == 'number')) then
    error(where .. ': width_key must name a config value (a number, or unset) beside size_key', 0)
  end
  return fw or {}, prefixes or {}, size_key, width_key
end

-- Config values the command line may set: scalars of the config (not the description's own fields)
-- and from_weights' keys.
local RESERVED = { build = true, input = true, from_weights = true, training_only = true, size_key = true,
                   width_key = true, has_deploy_form = true, deploy = true }
local function settable(entry)
  local keys = {}
  for k, v in pairs(entry.config) do
    if type(k) == 'string' and not RESERVED[k] and (type(v) == 'number' or type(v) == 'boolean' or type(v) == 'string') then
      keys[k] = true
    end
  end
  for k in pairs(entry.from_weights) do keys[k] = true end
  if entry.width_key then keys[entry.width_key] = true end
  return keys
end

function zoo.entry(desc, name, file, family)
  local cfg = desc.configs[name]
  local fw, prefixes, size_key, width_key = declarations(desc, cfg, file, name)
  return { name = name, family = family, file = file, config = cfg, from_weights = fw, training_only = prefixes,
           size_key = size_key, width_key = width_key, settings = {}, given = {} }
end

local function shown(s) return (tostring(s):sub(1, 80):gsub('[^\32-\126]', '?')) end

-- "key=value,..." from the command line: values are integers, numbers, true/false or identifiers.
function zoo.parse_settings(text, model)
  local out, order = {}, {}
  for item in (text .. ','):gmatch('([^,]*),') do
    local k, v = item:match('^([%a_][%w_]*)=(.*)$')
    if not k then error(model .. ': "' .. shown(item) .. '" is not key=value', 0) end
    local value
    if v == 'true' or v == 'false' then value = v == 'true'
    elseif v:match('^[-+]?%d+$') and #v <= 15 then value = tonumber(v)
    elseif (v:match('^[-+]?%d+%.?%d*[eE]?[-+]?%d*$') or v:match('^[-+]?%.%d+[eE]?[-+]?%d*$')) and tonumber(v)
        and math.abs(tonumber(v)) < 1e300 then value = tonumber(v)
    elseif v:match('^[%a_][%w_]*$') and #v <= 64 then value = v
    else
      error(model .. ': ' .. k .. '="' .. shown(v) .. '": expected an integer, a number, true/false or a name', 0)
    end
    if out[k] ~= nil then error(model .. ': ' .. k .. ' given twice', 0) end
    out[k] = value
    order[#order + 1] = k
  end
  return out, order
end

-- Apply command-line settings to an entry: each key must be settable, of the config's type (a
-- number for a from_weights key the config does not set).
local function apply_settings(entry, text, model)
  local values, order = zoo.parse_settings(text, model)
  local keys = settable(entry)
  for _, k in ipairs(order) do
    if not keys[k] then
      local names = {}
      for n in pairs(keys) do names[#names + 1] = n end
      table.sort(names)
      error(string.format('%s: no setting "%s" (%s has %s)', model, k, entry.name,
        #names > 0 and table.concat(names, ', ') or 'none'), 0)
    end
    local old = entry.config[k]
    local want = old ~= nil and type(old) or 'number' -- from_weights values are whole numbers
    if type(values[k]) ~= want then
      error(string.format('%s: %s=%s: expected a %s%s', model, k, shown(values[k]), want == 'string' and 'name' or want,
        old ~= nil and (', as the config has ' .. shown(old)) or ''), 0)
    end
    entry.settings[k], entry.given[k] = values[k], 'the command line'
  end
  return entry
end

-- Resolve "NAME[:key=value,...]" or "FILE.lua[:CONFIG][:key=value,...]" to an entry: { name, family,
-- file, config, from_weights, training_only, size_key, width_key, settings (values set over the
-- config's), given (who set each) }.
function zoo.resolve(spec)
  local settings
  local head, tail = spec:match('^(.-):([^:]*=[^:]*)$')
  if head then spec, settings = head, tail end
  local model = spec
  local file, config = spec:match('^(.-%.lua):([%w_%-%.]+)$')
  if not file and spec:match('%.lua$') then file = spec end
  local entry
  if file then
    if not lfs.attributes(file) then error(file .. ': no such description file', 0) end
    local desc = zoo.load_file(file)
    local names = {}
    for name in pairs(desc.configs) do names[#names + 1] = name end
    table.sort(names)
    if not config then
      if #names ~= 1 then
        error(file .. ': has configs ' .. table.concat(names, ', ') .. '; name one as ' .. file .. ':CONFIG', 0)
      end
      config = names[1]
    end
    if not desc.configs[config] then
      error(file .. ': no config "' .. config .. '" (has ' .. table.concat(names, ', ') .. ')', 0)
    end
    entry = zoo.entry(desc, config, file, desc.family or '?')
  else
    for _, e in ipairs(zoo.list()) do
      if e.name == spec then entry = e end
    end
    if not entry then error('unknown model "' .. shown(spec) .. '" (see foldc list, or give FILE.lua[:CONFIG])', 0) end
  end
  if settings then apply_settings(entry, settings, model) end
  return entry
end

-- Build and trace the model: returns the graph (training-time form, parameters unbound).
-- The entry's settings and then overrides replace the config's fields (overrides e.g. { deploy = true }
-- for the deploy form of a config with has_deploy_form; see pipeline.bound_graph); entry.input, when
-- set, replaces the config's input; else a size_key config's input is that value square (or that
-- value high and width_key's wide, when set).
function zoo.trace(entry, overrides)
  local cfg = entry.config
  if type(cfg.build) ~= 'function' or type(cfg.input) ~= 'table' then
    error(entry.file .. ': config "' .. entry.name .. '" needs build = function and input = {1,C,H,W}', 0)
  end
  local merged = copy(entry.settings or {})
  for k, v in pairs(overrides or {}) do merged[k] = v end
  cfg = setmetatable(merged, { __index = cfg })
  local input_where = entry.file .. ': config "' .. entry.name .. '"'
  local input = entry.input or cfg.input
  if entry.size_key and not entry.input and #input == 4 then
    local h = cfg[entry.size_key]
    input = { input[1], input[2], h, entry.width_key and cfg[entry.width_key] or h }
  end
  if #input ~= 4 and #input ~= 3 then
    local show = {}
    for i = 1, math.min(#input, 8) do show[i] = tostring(type(input[i]) == 'number' and input[i] or type(input[i])) end
    error(input_where .. ': input must be {1, C, H, W} (or tokens {1, N, D}), got {' .. table.concat(show, ', ') .. '}', 0)
  end
  local graph = zoo.run(entry.file, function()
    return nn.trace(cfg.build(cfg), input, entry.name, input_where)
  end)
  graph.family = entry.family
  graph.batch = entry.batch or 1
  graph.training_only = entry.training_only
  return graph
end

return zoo
