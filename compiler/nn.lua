-- The description DSL: PyTorch-like modules whose forward() is traced into the IR.
--
-- A model is a tree of modules. Assigning a module to a field of another names it, exactly as
-- nn.Module.__setattr__ does in PyTorch, so parameter keys ("layer1.0.conv1.weight") equal the
-- reference state_dict keys. Sequential children are named "0", "1", ... unless added with a name.
-- Calling a module on a symbolic tensor records one IR node; shapes are inferred as the trace goes,
-- so a shape error names the description line that caused it.
--
-- A description never holds a piece of the graph: it gets tensor handles (a copy of the shape, the
-- graph tensor kept here), every attribute and parameter key is copied into the graph as plain data
-- (numbers, strings, booleans, tables without metatables), and every size is checked where it enters:
-- integers in range, and no tensor or weight beyond the memory_gib bound (compiler/limits.lua), before
-- anything is allocated. Modules and tensors have protected metatables. zoo.lua runs description code
-- in a sandbox and gives it nn.for_descriptions(), which hides the helpers below meant for DSL files.
local ir = require 'ir'
local ops = require 'ops'
local limits = require 'limits'

local nn = {}

local compiler_dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'

local tracer = nil

-- The first stack frame outside the compiler: the description line responsible for the call.
-- A tail call (`return self.conv(x)`) leaves no frame for its line; then the innermost module
-- being called answers with the line that defined it.
-- While zoo.lua runs a description, nn.running = { file =, files = set of its source files }, and
-- only those files' frames count.
local function caller_where()
  local running = rawget(nn, 'running')
  for level = 3, 40 do
    local info = debug.getinfo(level, 'Sl')
    if not info then break end
    local src = info.source
    if src:sub(1, 1) == '@' and (running and running.files[src:sub(2)]
                                 or not running and src:sub(2, #compiler_dir + 1) ~= compiler_dir) then
      return src:sub(2) .. ':' .. (info.currentline or 0)
    end
  end
  local stack = tracer and tracer.calls
  local current = stack and stack[#stack]
  if current then
    return tostring(current._where) .. ' (in ' .. tostring(current._path ~= '' and current._path or current._kind) .. ')'
  end
  return running and running.file or '?'
end
nn.caller_where = caller_where

local function fail(where, msg)
  error(tostring(where) .. ': ' .. tostring(msg), 0)
end
nn.fail = fail

local function shape_str(s) return table.concat(s, 'x') end

-- Refuse `what` when its float32 (or 8-byte) elements exceed the memory_gib bound.
local function check_bytes(where, what, shape, elem_bytes)
  local n = elem_bytes or 4
  for _, d in ipairs(shape) do n = n * d end
  limits.check('memory_gib', n / 2 ^ 30, where .. ': ' .. what .. ' [' .. shape_str(shape) .. ']')
  return n
end

-- A copy of `v` as plain data (raw traversal: no metamethod runs); functions and other values refused.
local function plain(v, where, what, memo)
  local t = type(v)
  if t == 'number' or t == 'string' or t == 'boolean' or t == 'nil' then return v end
  if t ~= 'table' then fail(where, what .. ' holds ' .. ops.show(v) .. ', not plain data') end
  memo = memo or {}
  if memo[v] then return memo[v] end
  local c = {}
  memo[v] = c
  for k, x in next, v do c[plain(k, where, what, memo)] = plain(x, where, what, memo) end
  return c
end
nn.plain = plain

---------------------------------------------------------------------------------------------------
-- Tracing state (the `tracer` above): one trace at a time, a single-threaded front-end step.

-- Tensor handles: what a description holds. `shape` is its own copy; the graph tensor is in `graph_of`.
local tensor_methods = {}
local Tensor = { __metatable = 'tensor', __index = tensor_methods }
Tensor.__add = function(a, b) return nn.add(a, b) end
local graph_of = setmetatable({}, { __mode = 'k' })

local function handle(t)
  local shape = {}
  for i, d in ipairs(t.shape) do shape[i] = d end
  local h = setmetatable({ shape = shape }, Tensor)
  graph_of[h] = t
  return h
end

-- A graph tensor of `shape` (positive integer dims, within the memory bound) as a handle.
local function symbolic(where, what, shape, producer)
  assert(tracer, 'symbolic tensor outside a trace')
  local dims = {}
  for i = 1, #shape do
    local ok, err = pcall(ops.int, rawget(shape, i), 1, what .. ' dimension ' .. i)
    if not ok then fail(where, err) end
    dims[i] = shape[i]
  end
  check_bytes(where, what, dims)
  return handle(tracer.graph:new_tensor(dims, producer))
end

function tensor_methods:size(dim)
  if dim then return self.shape[dim] end
  return self.shape
end

-- The graph tensor behind handle `x` of the current trace; else an error naming `what`.
local function tensor_of(where, x, what)
  local t = graph_of[x]
  if not t or not tracer or tracer.graph.tensors[t.id] ~= t then
    fail(where, (what or 'argument') .. ' is not a tensor of this trace (got ' .. ops.show(x) .. ')')
  end
  return t
end

-- Record one node of op `op` with inputs (handles), attributes and parameter keys; returns its output.
local function record(where, module_path, op, inputs, attrs, params)
  local xs, shapes = {}, {}
  for i, x in ipairs(inputs) do
    xs[i] = tensor_of(where, x, op .. ' input ' .. i)
    shapes[i] = xs[i].shape
  end
  local name = type(module_path) == 'string' and module_path or nil
  local label = name and (name .. ' (' .. op .. ')') or op
  local node = tracer.graph:add_node{
    op = op, inputs = xs, attrs = plain(attrs or {}, where, label .. ' attributes'),
    params = plain(params or {}, where, label .. ' parameters'), module = name, where = where,
  }
  local ok, out_shape = pcall(ops.get(op).shape, node, shapes)
  if not ok then fail(where, label .. ': ' .. tostring(out_shape)) end
  local out = symbolic(where, label .. ' output', out_shape, node)
  node.outputs = { graph_of[out] }
  return out
end

---------------------------------------------------------------------------------------------------
-- Modules.

local Module = {}
nn.Module_methods = Module

local function module_index(self, k)
  local children = rawget(self, '_children')
  local c = children and children.by_name[k]
  if c ~= nil then return c end
  return Module[k]
end

local function module_newindex(self, k, v)
  if type(v) == 'table' and debug.getmetatable(v) and rawget(debug.getmetatable(v), '__foldc_module') then
    local children = rawget(self, '_children')
    if children.by_name[k] == nil then children.order[#children.order + 1] = k end
    children.by_name[k] = v
  else
    rawset(self, k, v)
  end
end

local module_mt = {
  __metatable = 'module',
  __foldc_module = true,
  __index = module_index,
  __newindex = module_newindex,
  __call = function(self, ...)
    if not tracer then fail(caller_where(), 'module called outside a trace') end
    local calls = tracer.calls
    calls[#calls + 1] = self
    local out = self:forward(...)
    calls[#calls] = nil
    return out
  end,
}

-- A new module. `kind` names it in errors; leaf modules declare parameters with :param().
function nn.Module(kind)
  local m = setmetatable({ _children = { order = {}, by_name = {} }, _params = {},
                           _kind = kind or 'Module', _where = caller_where() }, module_mt)
  return m
end

function nn.is_module(v)
  return type(v) == 'table' and debug.getmetatable(v) == module_mt
end

-- Declare a parameter or buffer of this module. opts: buffer=true, optional=true, dtype='I64',
-- resample = { grid = {h, w}, prefix = N, mode = 'bicubic' | 'bicubic_antialias' }: the checkpoint
-- holds this position grid at h x w (tokens [1, N + h*w, D] for a shape of rank 3, a map [1, C, h, w]
-- for rank 4), resampled to the declared shape's grid when the weights are bound
-- (compiler/weights/resample.lua).
function Module:param(name, shape, opts)
  opts = opts or {}
  self._params[#self._params + 1] = { name = name, shape = shape, buffer = opts.buffer,
                                      optional = opts.optional, dtype = opts.dtype or 'F32', resample = opts.resample }
end

-- Add a child under an explicit name (may contain dots, as PyTorch's add_module allows).
function Module:add(name, child)
  if child == nil then child, name = name, tostring(#self._children.order) end
  if not nn.is_module(child) then fail(caller_where(), 'add: ' .. ops.show(name) .. ' is not a module') end
  module_newindex(self, name, child)
  return self
end

function Module:children()
  local i, order = 0, self._children.order
  return function()
    i = i + 1
    local name = order[i]
    if name then return name, self._children.by_name[name] end
  end
end

function Module:key(name)
  return self._path == '' and name or (self._path .. '.' .. name)
end

-- A state_dict key (or a part of one): letters, digits, '_', '-' and '.'.
local function key_name(v, where, what)
  if type(v) == 'number' and v % 1 == 0 and v >= 0 then v = tostring(v) end
  if type(v) ~= 'string' or not v:match('^[%w_%-%.]+$') or #v > 200 then
    fail(where, what .. ' must be a name of letters, digits, _, - and . (at most 200), got ' .. ops.show(v))
  end
  return v
end
nn.key_name = key_name

local ELEM_BYTES = { F32 = 4, I64 = 8 }

-- Assign paths to the whole tree; returns the ordered list of parameter specs (plain copies, each
-- shape checked) and their bytes.
-- A param's resample option checked against its declared shape: { grid, to, prefix, mode, stored }
-- (stored: the checkpoint's shape).
local function resample_spec(r, shape, key, where)
  local modes = require('weights.resample').MODES
  if type(r) ~= 'table' or type(r.grid) ~= 'table' or not modes[r.mode] then
    fail(where, key .. ': resample must be { grid = {h, w}, prefix = N, mode = \'bicubic\' | \'bicubic_antialias\' }')
  end
  local h = ops.int(rawget(r.grid, 1), 1, key .. ' resample grid height')
  local w = ops.int(rawget(r.grid, 2), 1, key .. ' resample grid width')
  local prefix = ops.int(r.prefix or 0, 0, key .. ' resample prefix')
  if #shape == 4 and prefix == 0 then
    return { grid = { h, w }, to = { shape[3], shape[4] }, prefix = 0, mode = r.mode, stored = { shape[1], shape[2], h, w } }
  end
  local grid = #shape == 3 and shape[2] - prefix or -1
  local side = math.floor(math.sqrt(math.max(grid, 0)) + 0.5)
  if #shape ~= 3 or side * side ~= grid then
    fail(where, key .. ': resample needs tokens [1, prefix + h*w, D] on a square grid or a map [1, C, h, w]')
  end
  return { grid = { h, w }, to = { side, side }, prefix = prefix, mode = r.mode, stored = { shape[1], prefix + h * w, shape[3] } }
end

local function assign_paths(m, path, specs, on_path, bytes)
  local where = type(rawget(m, '_where')) == 'string' and m._where or '?'
  if on_path[m] then fail(where, (path ~= '' and path or 'the model') .. ' contains itself') end
  on_path[m] = true
  rawset(m, '_path', path)
  for _, p in ipairs(rawget(m, '_params')) do
    local key = m:key(key_name(p.name, where, 'parameter name'))
    local dtype = p.dtype or 'F32'
    if not ELEM_BYTES[dtype] then fail(where, key .. ': dtype must be F32 or I64, got ' .. ops.show(dtype)) end
    if type(p.shape) ~= 'table' then fail(where, key .. ': shape must be a list of sizes, got ' .. ops.show(p.shape)) end
    local shape = {}
    for i = 1, #p.shape do shape[i] = ops.int(rawget(p.shape, i), 1, key .. ' dimension ' .. i) end
    bytes = bytes + check_bytes(where, key, shape, ELEM_BYTES[dtype])
    specs[#specs + 1] = { key = key, shape = shape, buffer = p.buffer == true,
                          optional = p.optional == true, dtype = dtype, where = where,
                          resample = p.resample ~= nil and resample_spec(p.resample, shape, key, where) or nil }
  end
  for name, child in m:children() do
    name = key_name(name, where, 'child module name')
    if not nn.is_module(child) then fail(where, name .. ' is not a module') end
    bytes = assign_paths(child, path == '' and name or (path .. '.' .. name), specs, on_path, bytes)
  end
  on_path[m] = nil
  return bytes
end

function Module:forward()
  fail(caller_where(), self._kind .. ' has no forward()')
end

---------------------------------------------------------------------------------------------------
-- Leaf modules (PyTorch names and defaults).

-- An integer >= min (ops.int's range), else an error at `where` naming `what` and the value.
local function int(v, where, what, min)
  local ok, err = pcall(ops.int, v, min or 1, what)
  if not ok then fail(where, err) end
  return v
end
nn.int = int

local function positive_int(v, where, what) return int(v, where, what, 1) end

-- A number or an {h, w} pair of integers >= min (1 unless given), as PyTorch's kernel/stride/...
local function pair(v, where, what, min)
  local p
  if type(v) == 'number' then p = { v, v }
  elseif type(v) == 'table' and rawget(v, 1) ~= nil and rawget(v, 3) == nil then p = { rawget(v, 1), rawget(v, 2) }
  else fail(where, what .. ' must be a number or a pair, got ' .. ops.show(v)) end
  int(p[1], where, what, min); int(p[2], where, what, min)
  return p
end

-- A positive finite number (eps, scale factors).
local function finite(v, where, what, positive)
  if type(v) ~= 'number' or v ~= v or v == math.huge or v == -math.huge or (positive and v <= 0) then
    fail(where, what .. ' must be a ' .. (positive and 'positive ' or '') .. 'finite number, got ' .. ops.show(v))
  end
  return v
end
nn.finite = finite

-- Conv2d(in, out, kernel, {stride=1, padding=0, dilation=1, groups=1, bias=true}); kernel/stride/
-- padding/dilation are numbers or {h, w} pairs as in PyTorch.
function nn.Conv2d(cin, cout, kernel, o)
  o = o or {}
  local m = nn.Module('Conv2d')
  local w = m._where
  positive_int(cin, w, 'Conv2d in_channels'); positive_int(cout, w, 'Conv2d out_channels')
  local groups = positive_int(o.groups or 1, w, 'Conv2d groups')
  if cin % groups ~= 0 or cout % groups ~= 0 then
    fail(w, string.format('Conv2d groups=%d must divide in_channels=%d and out_channels=%d', groups, cin, cout))
  end
  m.cin, m.cout, m.groups = cin, cout, groups
  m.kernel = pair(kernel, w, 'Conv2d kernel_size')
  m.stride = pair(o.stride or 1, w, 'Conv2d stride')
  m.padding = pair(o.padding or 0, w, 'Conv2d padding', 0)
  m.dilation = pair(o.dilation or 1, w, 'Conv2d dilation')
  m.has_bias = o.bias ~= false
  m:param('weight', { cout, cin / groups, m.kernel[1], m.kernel[2] })
  if m.has_bias then m:param('bias', { cout }) end
  function m:forward(x)
    return record(caller_where(), self._path, 'conv2d', { x }, {
      cin = self.cin, cout = self.cout, groups = self.groups, kernel = self.kernel,
      stride = self.stride, padding = self.padding, dilation = self.dilation,
    }, { weight = self:key('weight'), bias = self.has_bias and self:key('bias') or nil })
  end
  return m
end

local function batchnorm(kind, rank_ok)
  return function(n, o)
    o = o or {}
    local m = nn.Module(kind)
    positive_int(n, m._where, kind .. ' num_features')
    m.n, m.eps = n, finite(o.eps or 1e-5, m._where, kind .. ' eps', true)
    m.affine = o.affine ~= false
    -- tokens: on tokens [1, N, C] flattened to rows (LeViT's bn(x.flatten(0, 1)).reshape_as(x)): the
    -- channels are the last dim
    m.tokens = o.tokens == true
    if m.affine then m:param('weight', { n }); m:param('bias', { n }) end
    m:param('running_mean', { n }, { buffer = true })
    m:param('running_var', { n }, { buffer = true })
    m:param('num_batches_tracked', {}, { buffer = true, optional = true, dtype = 'I64' })
    function m:forward(x)
      return record(caller_where(), self._path, 'batchnorm', { x }, { n = self.n, eps = self.eps,
        ranks = self.tokens and { [3] = true } or rank_ok, channels_last = self.tokens or nil }, {
        weight = self.affine and self:key('weight') or nil, bias = self.affine and self:key('bias') or nil,
        running_mean = self:key('running_mean'), running_var = self:key('running_var'),
      })
    end
    return m
  end
end
nn.BatchNorm2d = batchnorm('BatchNorm2d', { [4] = true })
nn.BatchNorm1d = batchnorm('BatchNorm1d', { [2] = true, [3] = true })

-- Linear(in, out, {bias=true})
function nn.Linear(cin, cout, o)
  o = o or {}
  local m = nn.Module('Linear')
  positive_int(cin, m._where, 'Linear in_features'); positive_int(cout, m._where, 'Linear out_features')
  m.cin, m.cout, m.has_bias = cin, cout, o.bias ~= false
  m:param('weight', { cout, cin })
  if m.has_bias then m:param('bias', { cout }) end
  function m:forward(x)
    return record(caller_where(), self._path, 'linear', { x }, { cin = self.cin, cout = self.cout },
      { weight = self:key('weight'), bias = self.has_bias and self:key('bias') or nil })
  end
  return m
end

local function stateless(kind, fn)
  return function(...)
    local m = nn.Module(kind)
    local args = { ... }
    function m:forward(x) return fn(caller_where(), self._path, x, unpack(args)) end
    return m
  end
end

local function pool_attrs(where, kernel, o)
  o = o or {}
  return {
    kernel = pair(kernel, where, 'pool kernel_size'),
    stride = pair(o.stride or kernel, where, 'pool stride'),
    padding = pair(o.padding or 0, where, 'pool padding', 0),
    ceil_mode = o.ceil_mode == true,
    count_include_pad = o.count_include_pad ~= false,
  }
end

local function max_pool(where, path, x, kernel, o)
  local a = pool_attrs(where, kernel, o); a.mode = 'max'
  return record(where, path, 'pool2d', { x }, a)
end
local function avg_pool(where, path, x, kernel, o)
  local a = pool_attrs(where, kernel, o); a.mode = 'avg'
  return record(where, path, 'pool2d', { x }, a)
end
-- AdaptiveAvgPool2d(n or {h, w}); None (keep that dimension) is not expressible here.
local function adaptive_avg_pool(where, path, x, size)
  local out = pair(size, where, 'AdaptiveAvgPool2d output_size')
  if out[1] == 1 and out[2] == 1 then return record(where, path, 'global_avgpool', { x }) end
  return record(where, path, 'adaptive_avgpool', { x }, { out = out })
end
local function flatten(where, path, x, start_dim)
  if (start_dim or 1) ~= 1 then fail(where, 'flatten supports start_dim=1 only') end
  return record(where, path, 'flatten', { x })
end
local function identity(_, _, x) return x end

-- Pool modules check their window where they are made.
local function pool_module(kind, mode)
  return function(kernel, o)
    local m = nn.Module(kind)
    local a = pool_attrs(m._where, kernel, o)
    a.mode = mode
    function m:forward(x) return record(caller_where(), self._path, 'pool2d', { x }, a) end
    return m
  end
end
nn.MaxPool2d = pool_module('MaxPool2d', 'max')
nn.AvgPool2d = pool_module('AvgPool2d', 'avg')
nn.AdaptiveAvgPool2d = stateless('AdaptiveAvgPool2d', adaptive_avg_pool)
nn.Flatten = stateless('Flatten', flatten)
nn.Identity = stateless('Identity', identity)
-- Dropout in every form is the identity at inference (nn.DropPath too: compiler/nn/transformer.lua).
nn.Dropout = stateless('Dropout', identity)
nn.Dropout1d = stateless('Dropout1d', identity)
nn.Dropout2d = stateless('Dropout2d', identity)
nn.AlphaDropout = stateless('AlphaDropout', identity)

-- Functional forms (torch.nn.functional / tensor methods).
function nn.max_pool2d(x, kernel, o) return max_pool(caller_where(), nil, x, kernel, o) end
function nn.avg_pool2d(x, kernel, o) return avg_pool(caller_where(), nil, x, kernel, o) end
function nn.adaptive_avg_pool2d(x, size) return adaptive_avg_pool(caller_where(), nil, x, size) end
function nn.flatten(x, start_dim) return flatten(caller_where(), nil, x, start_dim) end
function nn.add(a, b) return record(caller_where(), nil, 'add', { a, b }) end
function nn.dropout(x) return x end
tensor_methods.flatten = function(x, start_dim) return flatten(caller_where(), nil, x, start_dim) end

-- Activations, one module and one functional per PyTorch name of compiler/activations.lua (nn.ReLU(),
-- nn.relu(x), nn.GELU({approximate = 'tanh'}), nn.gelu(x, {approximate = 'tanh'}), ...): a module's
-- options pick its entry (the first entry of a name is the default), `inplace` is irrelevant.
local activations = require 'activations'

local function pick_activation(where, name, entries, o)
  if o == nil or type(o) == 'boolean' then return entries[1].name end -- nn.ReLU(true): inplace
  if type(o) ~= 'table' then fail(where, name .. ' options must be a table, got ' .. ops.show(o)) end
  local chosen = entries[1]
  for k, v in pairs(o) do
    if k ~= 'inplace' then
      local hit, allowed = nil, {}
      for _, e in ipairs(entries) do
        if e.options and e.options[k] ~= nil then
          allowed[#allowed + 1] = ops.show(e.options[k])
          if e.options[k] == v then hit = e end
        end
      end
      if not hit then
        fail(where, string.format('%s: %s = %s is not supported%s', name, ops.show(k), ops.show(v),
          #allowed > 0 and (' (' .. table.concat(allowed, ' or ') .. ')') or ' (no such option)'))
      end
      chosen = hit
    end
  end
  return chosen.name
end

local activation_modules, activation_functionals = {}, {}
for _, e in ipairs(activations.list) do
  activation_modules[e.module] = activation_modules[e.module] or {}
  table.insert(activation_modules[e.module], e)
  activation_functionals[e.functional] = activation_functionals[e.functional] or {}
  table.insert(activation_functionals[e.functional], e)
end
for module, entries in pairs(activation_modules) do
  nn[module] = function(o)
    local m = nn.Module(module)
    local act = pick_activation(m._where, 'nn.' .. module, entries, o)
    function m:forward(x) return record(caller_where(), self._path, 'act', { x }, { act = act }) end
    return m
  end
end
for functional, entries in pairs(activation_functionals) do
  nn[functional] = function(x, o)
    local where = caller_where()
    return record(where, nil, 'act', { x }, { act = pick_activation(where, 'nn.' .. functional, entries, o) })
  end
end

-- Sequential(m1, m2, ...): children "0", "1", ...; forward chains them.
function nn.Sequential(...)
  local m = nn.Module('Sequential')
  for i, child in ipairs({ ... }) do
    if not nn.is_module(child) then fail(m._where, 'Sequential argument ' .. i .. ' is not a module') end
    m:add(tostring(i - 1), child)
  end
  function m:forward(x)
    for _, child in self:children() do x = child(x) end
    return x
  end
  return m
end

---------------------------------------------------------------------------------------------------
-- Trace a root module on an input of `input_shape` (NCHW, batch 1) into a graph.

-- input_where names the input in errors (default: the root module's line). Refused before any
-- forward() runs: an input that is not {1, ...} positive integers, and an input, a parameter or all
-- parameters together beyond the memory_gib bound.
function nn.trace(root, input_shape, name, input_where)
  if not nn.is_module(root) then fail(caller_where(), 'model is not a module, got ' .. ops.show(root)) end
  if tracer then error('nested trace', 0) end
  local where = input_where or root._where
  local graph = ir.new_graph(name)
  graph.param_specs = {}
  local bytes = assign_paths(root, '', graph.param_specs, {}, 0)
  limits.check('memory_gib', bytes / 2 ^ 30, root._where .. ': the weights (' .. #graph.param_specs .. ' tensors)')
  if type(input_shape) ~= 'table' or rawget(input_shape, 1) ~= 1 then
    fail(where, 'input must be a shape of batch 1, {1, C, H, W}, got ' .. ops.show(input_shape))
  end
  tracer = { graph = graph, calls = {} }
  local ok, err = pcall(function()
    local x = symbolic(where, 'input', input_shape, nil)
    graph.input = graph_of[x]
    local out = root(x)
    graph.outputs = { tensor_of(root._where, out, 'forward() result') }
  end)
  tracer = nil
  if not ok then error(err, 0) end
  graph:prune()
  return graph
end

-- Helpers for DSL extensions: compiler/nn/<topic>.lua files each return function(nn) that adds
-- modules (e.g. nn.LayerNorm) using these, so new ops come as new files.
nn.record = record
nn.pair = pair
nn.positive_int = positive_int
nn.stateless = stateless
nn.tensor_of = tensor_of

do
  local lfs = require 'lfs'
  local dir = compiler_dir .. '/nn'
  if lfs.attributes(dir) then
    local files = {}
    for f in lfs.dir(dir) do
      if f:match('%.lua$') then files[#files + 1] = f:sub(1, -5) end
    end
    table.sort(files)
    for _, f in ipairs(files) do require('nn.' .. f)(nn) end
  end
end

-- A name the DSL does not have is an error naming the description line, not a nil call. PyTorch
-- names (torch.nn modules, torch.nn.functional and tensor ops) get a hint: what to use instead, or
-- what the DSL has of that kind; any other name gets the generic line. models/README.md lists the DSL.
local MISSING = {}
local function missing(names, hint, use)
  for name in names:gmatch('%S+') do
    if rawget(nn, name) == nil then MISSING[name] = { hint = hint, use = use } end -- (what nn has, it has)
  end
end
local activation_names = {}
for _, e in ipairs(activations.list) do
  if activation_names[#activation_names] ~= e.module then activation_names[#activation_names + 1] = e.module end
end
-- PyTorch's activations (those compiler/activations.lua defines are skipped)
missing('ReLU6 relu6 SiLU silu Hardswish hardswish Hardsigmoid hardsigmoid Sigmoid sigmoid Tanh tanh LeakyReLU '
  .. 'leaky_relu PReLU prelu ELU elu SELU selu CELU celu Mish mish Softplus softplus Softsign softsign '
  .. 'Hardtanh hardtanh GLU glu LogSigmoid logsigmoid Tanhshrink Threshold threshold Hardshrink Softshrink RReLU',
  'supported activations: ' .. table.concat(activation_names, ', '))
missing('Softmax softmax LogSoftmax log_softmax Softmin Softmax2d',
  'softmax exists only inside nn.Attention; a model ends with its logits')
missing('GroupNorm group_norm InstanceNorm1d InstanceNorm2d instance_norm LocalResponseNorm '
  .. 'local_response_norm BatchNorm3d LayerNorm2d RMSNorm',
  'supported normalisations: BatchNorm2d, BatchNorm1d, LayerNorm over the last dim')
missing('SyncBatchNorm', 'nn.BatchNorm2d: at inference it is the same layer, with the same keys', true)
missing('Conv1d conv1d Conv3d conv3d ConvTranspose1d ConvTranspose2d ConvTranspose3d conv_transpose2d '
  .. 'Unfold unfold Fold fold', 'supported convolution: Conv2d (any kernel, stride, padding, dilation, groups)')
missing('LazyConv2d LazyLinear LazyBatchNorm2d',
  'nn.Conv2d, nn.Linear, nn.BatchNorm2d with the input size written out (the weights\' shapes say it)', true)
missing('conv2d linear batch_norm layer_norm',
  'the module (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.LayerNorm) as a field: a weight needs a module for its key', true)
missing('MaxPool1d AvgPool1d MaxPool3d AvgPool3d AdaptiveMaxPool2d adaptive_max_pool2d AdaptiveAvgPool1d '
  .. 'LPPool2d MaxUnpool2d FractionalMaxPool2d', 'supported pooling: MaxPool2d, AvgPool2d, AdaptiveAvgPool2d')
missing('Upsample UpsamplingNearest2d UpsamplingBilinear2d interpolate upsample PixelShuffle pixel_shuffle '
  .. 'PixelUnshuffle pixel_unshuffle', 'no resampling of feature maps (nn.channel_shuffle shuffles channels)')
missing('ZeroPad2d ConstantPad2d ReflectionPad2d ReplicationPad2d CircularPad2d pad',
  'zero padding goes in the padding= of nn.Conv2d or the pool')
missing('LSTM GRU RNN LSTMCell GRUCell RNNCell Embedding EmbeddingBag',
  'foldc compiles vision CNNs and transformers; no recurrent or embedding layers')
missing('MultiheadAttention', 'nn.Attention(dim, heads) is timm\'s attention, with keys qkv and proj; '
  .. 'MultiheadAttention\'s in_proj_weight layout is not supported yet')
missing('TransformerEncoderLayer TransformerEncoder TransformerDecoderLayer TransformerDecoder Transformer',
  'build the block from nn.LayerNorm, nn.Attention, nn.Linear and nn.GELU as models/pit.lua does')
missing('scaled_dot_product_attention matmul bmm mm einsum baddbmm',
  'products of two activations exist only inside nn.Attention')
missing('concat stack', 'nn.cat(list, 1) joins feature maps along channels, nn.cat_tokens token sequences')
missing('reshape view permute transpose unflatten Unflatten squeeze unsqueeze',
  'nn.tokens and nn.token_map are the layouts the DSL has; nn.flatten(x, 1) before a Linear')
missing('mean', 'nn.adaptive_avg_pool2d(x, 1) for feature maps, nn.mean_tokens for tokens', true)
missing('sub div', 'nn.add (or a + b) and nn.mul(x, number) are the arithmetic the DSL has')
missing('Bilinear', 'supported linear layer: Linear')
missing('ModuleList ModuleDict',
  'nn.Module(\'ModuleList\') with :add(child) for keys 0, 1, ..., or :add(name, child); call the children in forward', true)
missing('Parameter', 'module:param(name, shape) to declare a parameter under its key, nn.parameter(module, name) to read it as a tensor', true)
missing('functional', 'the functional forms on nn itself: nn.relu, nn.silu, nn.gelu (every activation\'s F name), nn.max_pool2d, nn.avg_pool2d, '
  .. 'nn.adaptive_avg_pool2d, nn.flatten, nn.add', true)

local function not_an_op(_, name)
  local shown = 'nn.' .. ops.show(name):gsub('^"(.*)"$', '%1')
  local m = type(name) == 'string' and MISSING[name]
  if m and m.use then fail(caller_where(), shown .. ' is not in the DSL: use ' .. m.hint .. ' (see models/README.md)') end
  if m then fail(caller_where(), shown .. ' is not supported yet (' .. m.hint .. '; see models/README.md)') end
  fail(caller_where(), shown .. ' is not an op foldc supports (see models/README.md for those it has)')
end
setmetatable(nn, { __index = not_an_op })

-- What a description sees as `nn`: the DSL, read-only, without the helpers for DSL files and the
-- tracer (a description cannot record raw nodes, mark blocks or reach the tensors of the graph).
local INTERNAL = { record = true, pair = true, positive_int = true, int = true, finite = true, plain = true,
  key_name = true, stateless = true, tensor_of = true, mark_block = true, trace = true,
  Module_methods = true, for_descriptions = true }
function nn.for_descriptions()
  return setmetatable({}, {
    __metatable = 'nn',
    __index = function(_, k)
      if INTERNAL[k] then return not_an_op(nil, k) end
      return nn[k]
    end,
    __newindex = function(_, k) fail(caller_where(), 'nn is read-only (assigning nn.' .. ops.show(k) .. ')') end,
  })
end

return nn
