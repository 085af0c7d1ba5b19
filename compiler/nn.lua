-- The description DSL: PyTorch-like modules whose forward() is traced into the IR.
--
-- A model is a tree of modules. Assigning a module to a field of another names it, exactly as
-- nn.Module.__setattr__ does in PyTorch, so parameter keys ("layer1.0.conv1.weight") equal the
-- reference state_dict keys. Sequential children are named "0", "1", ... unless added with a name.
-- Calling a module on a symbolic tensor records one IR node; shapes are inferred as the trace goes,
-- so a shape error names the description line that caused it.
local ir = require 'ir'
local ops = require 'ops'

local nn = {}

local compiler_dir = debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.'

local tracer = nil

-- The first stack frame outside the compiler: the description line responsible for the call.
-- A tail call (`return self.conv(x)`) leaves no frame for its line; then the innermost module
-- being called answers with the line that defined it.
local function caller_where()
  for level = 3, 40 do
    local info = debug.getinfo(level, 'Sl')
    if not info then break end
    local src = info.source
    if src:sub(1, 1) == '@' and src:sub(2, #compiler_dir + 1) ~= compiler_dir then
      return src:sub(2) .. ':' .. (info.currentline or 0)
    end
  end
  local stack = tracer and tracer.calls
  local current = stack and stack[#stack]
  return current and (current._where .. ' (in ' .. (current._path ~= '' and current._path or current._kind) .. ')') or '?'
end
nn.caller_where = caller_where

local function fail(where, msg)
  error(where .. ': ' .. msg, 0)
end
nn.fail = fail

---------------------------------------------------------------------------------------------------
-- Tracing state (the `tracer` above): one trace at a time, a single-threaded front-end step.

local Tensor = {}
Tensor.__index = Tensor
Tensor.__add = function(a, b) return nn.add(a, b) end

local function symbolic(shape, producer)
  assert(tracer, 'symbolic tensor outside a trace')
  local t = setmetatable(tracer.graph:new_tensor(shape, producer), Tensor)
  return t
end

function Tensor:size(dim)
  if dim then return self.shape[dim] end
  return self.shape
end

local function check_tensor(where, x, what)
  if getmetatable(x) ~= Tensor then
    fail(where, (what or 'argument') .. ' is not a tensor (got ' .. type(x) .. ')')
  end
end

-- Record one node of op `op` with inputs, attributes and parameter keys; returns its output.
local function record(where, module_path, op, inputs, attrs, params)
  for i, x in ipairs(inputs) do check_tensor(where, x, op .. ' input ' .. i) end
  local node = tracer.graph:add_node{
    op = op, inputs = inputs, attrs = attrs or {}, params = params or {},
    module = module_path, where = where,
  }
  local shapes = {}
  for i, x in ipairs(inputs) do shapes[i] = x.shape end
  local ok, out_shape = pcall(ops.get(op).shape, node, shapes)
  if not ok then
    fail(where, (module_path and (module_path .. ' (' .. op .. ')') or op) .. ': ' .. tostring(out_shape))
  end
  local out = symbolic(out_shape, node)
  node.outputs = { out }
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
  if type(v) == 'table' and getmetatable(v) and getmetatable(v).__foldc_module then
    local children = rawget(self, '_children')
    if children.by_name[k] == nil then children.order[#children.order + 1] = k end
    children.by_name[k] = v
  else
    rawset(self, k, v)
  end
end

local module_mt = {
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
  return type(v) == 'table' and getmetatable(v) == module_mt
end

-- Declare a parameter or buffer of this module. opts: buffer=true, optional=true, dtype='I64'.
function Module:param(name, shape, opts)
  opts = opts or {}
  self._params[#self._params + 1] = { name = name, shape = shape, buffer = opts.buffer,
                                      optional = opts.optional, dtype = opts.dtype or 'F32' }
end

-- Add a child under an explicit name (may contain dots, as PyTorch's add_module allows).
function Module:add(name, child)
  if child == nil then child, name = name, tostring(#self._children.order) end
  if not nn.is_module(child) then fail(caller_where(), 'add: ' .. tostring(name) .. ' is not a module') end
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

-- Assign paths to the whole tree; returns the ordered list of parameter specs.
local function assign_paths(m, path, specs)
  m._path = path
  for _, p in ipairs(m._params) do
    specs[#specs + 1] = { key = m:key(p.name), shape = p.shape, buffer = p.buffer,
                          optional = p.optional, dtype = p.dtype, where = m._where }
  end
  for name, child in m:children() do
    assign_paths(child, path == '' and name or (path .. '.' .. name), specs)
  end
  return specs
end

function Module:forward()
  fail(caller_where(), self._kind .. ' has no forward()')
end

---------------------------------------------------------------------------------------------------
-- Leaf modules (PyTorch names and defaults).

local function pair(v, where, what)
  if type(v) == 'number' then return { v, v } end
  if type(v) == 'table' and #v == 2 then return { v[1], v[2] } end
  fail(where, what .. ' must be a number or a pair, got ' .. tostring(v))
end

local function positive_int(v, where, what)
  if type(v) ~= 'number' or v < 1 or v % 1 ~= 0 then
    fail(where, what .. ' must be a positive integer, got ' .. tostring(v))
  end
  return v
end

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
  m.kernel = pair(kernel, w, 'kernel_size')
  m.stride = pair(o.stride or 1, w, 'stride')
  m.padding = pair(o.padding or 0, w, 'padding')
  m.dilation = pair(o.dilation or 1, w, 'dilation')
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
    m.n, m.eps = n, o.eps or 1e-5
    m.affine = o.affine ~= false
    if m.affine then m:param('weight', { n }); m:param('bias', { n }) end
    m:param('running_mean', { n }, { buffer = true })
    m:param('running_var', { n }, { buffer = true })
    m:param('num_batches_tracked', {}, { buffer = true, optional = true, dtype = 'I64' })
    function m:forward(x)
      return record(caller_where(), self._path, 'batchnorm', { x }, { n = self.n, eps = self.eps, ranks = rank_ok }, {
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
    kernel = pair(kernel, where, 'kernel_size'),
    stride = pair(o.stride or kernel, where, 'stride'),
    padding = pair(o.padding or 0, where, 'padding'),
    ceil_mode = o.ceil_mode or false,
    count_include_pad = o.count_include_pad ~= false,
  }
end

local function relu(where, path, x) return record(where, path, 'relu', { x }) end
local function max_pool(where, path, x, kernel, o)
  local a = pool_attrs(where, kernel, o); a.mode = 'max'
  return record(where, path, 'pool2d', { x }, a)
end
local function avg_pool(where, path, x, kernel, o)
  local a = pool_attrs(where, kernel, o); a.mode = 'avg'
  return record(where, path, 'pool2d', { x }, a)
end
local function adaptive_avg_pool(where, path, x, size)
  if size ~= 1 and not (type(size) == 'table' and size[1] == 1 and size[2] == 1) then
    fail(where, 'AdaptiveAvgPool2d supports output size 1 only, got ' .. tostring(size))
  end
  return record(where, path, 'global_avgpool', { x })
end
local function flatten(where, path, x, start_dim)
  if (start_dim or 1) ~= 1 then fail(where, 'flatten supports start_dim=1 only') end
  return record(where, path, 'flatten', { x })
end
local function identity(_, _, x) return x end

nn.ReLU = stateless('ReLU', relu)
nn.MaxPool2d = stateless('MaxPool2d', max_pool)
nn.AvgPool2d = stateless('AvgPool2d', avg_pool)
nn.AdaptiveAvgPool2d = stateless('AdaptiveAvgPool2d', adaptive_avg_pool)
nn.Flatten = stateless('Flatten', flatten)
nn.Identity = stateless('Identity', identity)
nn.Dropout = stateless('Dropout', identity)

-- Functional forms (torch.nn.functional / tensor methods).
function nn.relu(x) return relu(caller_where(), nil, x) end
function nn.max_pool2d(x, kernel, o) return max_pool(caller_where(), nil, x, kernel, o) end
function nn.avg_pool2d(x, kernel, o) return avg_pool(caller_where(), nil, x, kernel, o) end
function nn.adaptive_avg_pool2d(x, size) return adaptive_avg_pool(caller_where(), nil, x, size) end
function nn.flatten(x, start_dim) return flatten(caller_where(), nil, x, start_dim) end
function nn.add(a, b) return record(caller_where(), nil, 'add', { a, b }) end
Tensor.flatten = function(x, start_dim) return flatten(caller_where(), nil, x, start_dim) end

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

function nn.trace(root, input_shape, name)
  if not nn.is_module(root) then fail(caller_where(), 'model is not a module') end
  if tracer then error('nested trace', 0) end
  local graph = ir.new_graph(name)
  graph.param_specs = assign_paths(root, '', {})
  tracer = { graph = graph, calls = {} }
  local ok, err = pcall(function()
    graph.input = symbolic(input_shape, nil)
    local out = root(graph.input)
    check_tensor(root._where, out, 'forward() result')
    graph.outputs = { out }
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
nn.check_tensor = check_tensor
nn.Tensor = Tensor

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

-- An op the DSL does not have is an error naming the description line, not a nil call.
setmetatable(nn, { __index = function(_, name)
  fail(caller_where(), 'nn.' .. tostring(name) .. ' is not an op foldc supports')
end })

return nn
