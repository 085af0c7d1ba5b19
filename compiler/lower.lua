-- Lowering: the deploy graph becomes a program of steps over buffers, for one target. This stage
-- makes the choices that depend on the target and on the schedule database (lower.choose: the
-- algorithm of a conv, the weight blocking); each op's `lower(node, L, choice)` (in ops/<op>.lua)
-- only maps them to its generator, generator parameters and argument views.
--   * activations live channels-innermost: a [1,C,H,W] tensor is the Halide buffer (c, x, y);
--     a [1,...,N] tensor is (n, rows);
--   * weights are repacked into the layouts the kernels read (conv HWIO: dims (co, ci, kx, ky);
--     linear transposed: dims (co, ci)), co innermost, so every kernel streams them with vector loads;
--   * each kernel step names its generator, its shape-specialising parameters and its arguments,
--     each argument a view (dims as {extent, stride}) of an activation or a weights tensor;
--   * step 0 converts the NCHW input into the arena, the last step writes the NCHW output;
--   * a conv with a residual input writes its output over the residual when nothing reads it
--     afterwards (Lowering:can_overwrite): one buffer less alive, its lines read and written once.
-- opts.target (the build's resolved target string) becomes L.target, a target object
-- (compiler/targets/); opts.conv_algo (L.conv_algo) forces one algorithm for every eligible conv
-- (the tuner's algorithm run-off).
local tensor = require 'tensor'
local ops = require 'ops'
local ir = require 'ir'
local targets = require 'targets'
local schedules = require 'schedules'
local winograd = require 'winograd'

local lower = {}

local function numel(shape) return tensor.numel(shape) end

-- Dims of an activation tensor as a Halide view.
function lower.act_dims(shape)
  if #shape == 4 then
    local c, h, w = shape[2], shape[3], shape[4]
    return { { c, 1 }, { w, c }, { h, c * w } }
  end
  local n, rows = shape[#shape], numel(shape) / shape[#shape]
  return { { n, 1 }, { rows, n } }
end

function lower.flat_dims(shape) return { { numel(shape), 1 } } end

---------------------------------------------------------------------------------------------------
-- Choices per node, from the target and schedules/<target>/.

-- Output channels per weight block for a kernel with cout output channels (dense: more than one
-- input channel per group): the target's weight_block when it divides cout, else 0 (unblocked).
-- Blocked, a register tile's weights stream from memory as a few sequential runs that the hardware
-- prefetcher follows, instead of 64-256 byte pieces cout*4 bytes apart (deep layers read their
-- weights from DRAM once per run; RepMLP's grouped partition FC on 28x28, 9.8 MB of weights:
-- 0.97-1.29 -> 0.54-0.59 ms alone; ViT-B's token Linears, a page per row at 3072 channels: 167 ->
-- 158 ms). Depthwise convs stay unblocked.
function lower.weight_block(T, cout, dense)
  return (dense and cout % T.weight_block == 0) and T.weight_block or 0
end

-- A conv2d node's direct kernel parameters on target T, and the key of its algorithm record in
-- schedules/<target>/ ("algo " and that kernel's signature).
function lower.algo_key(node, T)
  local a = node.attrs
  local gp = ops.get('conv2d').direct_params(node, lower.weight_block(T, a.cout, a.cin > a.groups))
  return schedules.algo_key(gp), gp
end

-- The schedules file of target T as the bundle's report names it: relative to FOLDC_ROOT when
-- inside it (so a regenerated bundle does not depend on the checkout's path), or nil (none used).
function lower.schedules_file(T)
  local file, root = schedules.path(T.string), os.getenv('FOLDC_ROOT') or '.'
  if file and file:sub(1, #root + 1) == root .. '/' then file = file:sub(#root + 2) end
  return file
end

-- The direct kernel's kind of convolution, as the report names it.
local function direct_kind(a)
  if a.groups > 1 then return (a.groups == a.cin and a.cin == a.cout) and 'depthwise' or 'grouped' end
  return (a.kernel[1] == 1 and a.kernel[2] == 1) and '1x1' or 'direct'
end

-- The choice for a node: algorithm (what the step runs, as the bundle's report names it: "winograd
-- F(mxm)", "direct", "1x1", "depthwise", "grouped", "gemm") and reason (why, as text: for a conv2d
-- winograd.choose's, with its record named by file and key; else the op's kernel is the only one);
-- w_block for the kernels with blocked weights; for a conv2d also algo (the Winograd tile m, or
-- nil: direct).
function lower.choose(node, L)
  local a, T = node.attrs, L.target
  local one = 'the only kernel for ' .. node.op
  if node.op == 'conv2d' then
    local key = lower.algo_key(node, T)
    local rec = L.records[key]
    local m, reason = winograd.choose(node, { mode = L.conv_algo, record = rec and rec.algo, target = T,
                                              where = rec and (lower.schedules_file(T) .. ': ' .. key) })
    return { w_block = lower.weight_block(T, a.cout, a.cin > a.groups), algo = m, reason = reason,
             algorithm = m and string.format('winograd F(%dx%d)', m, m) or direct_kind(a) }
  elseif node.op == 'conv2d_proj' then
    return { w_block = lower.weight_block(T, a.cout, a.cin > a.groups), algorithm = direct_kind(a), reason = one }
  elseif node.op == 'linear_tokens' then
    return { w_block = lower.weight_block(T, a.cout, true), algorithm = 'gemm', reason = one }
  elseif node.op == 'linear' then
    return { algorithm = 'gemm', reason = one }
  end
  return { algorithm = 'direct', reason = one }
end

---------------------------------------------------------------------------------------------------

local Lowering = {}
Lowering.__index = Lowering

function Lowering:use(t)
  local root = self.alias[t.id] or t.id
  local a = self.acts[root]
  if not a then
    a = { id = root, bytes = 4 * numel(t.shape), first = self.step, last = self.step }
    self.acts[root] = a
    self.act_list[#self.act_list + 1] = a
  end
  a.last = math.max(a.last, self.step)
  return a
end

-- A view of an arena buffer of `bytes` that only the step being lowered uses (a kernel's scratch,
-- written and read within the step; its second output, read by nothing else), with dims.
function Lowering:scratch(bytes, dims)
  local a = { id = 'scratch:' .. self.step .. ':' .. (#self.act_list + 1), bytes = bytes, first = self.step, last = self.step }
  self.act_list[#self.act_list + 1] = a
  return { storage = 'arena', act = a, dims = dims }
end

-- A view of tensor t. A tensor an op aliased (Lowering:alias_view) is a view of its root's buffer at an
-- element offset; a constant (a parameter used as a tensor, ops/constant.lua) is a view of its
-- weights-blob copy, stored in the activation layout of its shape.
function Lowering:act(t, dims)
  local p = t.producer
  if p and p.op == 'constant' then
    local key = p.params.value
    local src, packed = self.params[key], nil
    local s = src.shape
    if #s == 4 and s[3] * s[4] > 1 then
      packed = tensor.new({ s[3], s[4], s[2] })
      local c, hw = s[2], s[3] * s[4]
      for ch = 0, c - 1 do
        for i = 0, hw - 1 do packed.data[i * c + ch] = src.data[ch * hw + i] end
      end
    else
      packed = src
    end
    self.constants = self.constants or {}
    local w = self.constants[key]
    if not w then
      w = self:weight(key .. '@act', packed, dims)
      self.constants[key] = w
    end
    return { storage = 'weights', weight = w.weight, dims = dims }
  end
  return { storage = 'arena', act = self:use(t), dims = dims, elem_offset = self.alias_offset[t.id] }
end

-- Let tensor `out` be a view of tensor `src`'s buffer, `elem_offset` floats in (a reshape, a
-- transpose that the channels-innermost layout makes free, a slice of tokens). An op's lower()
-- calls this and returns nothing: no step.
function Lowering:alias_view(out, src, elem_offset)
  local p = src.producer
  if p and p.op == 'constant' then
    error(string.format('%s: a view of parameter %s is not supported; use it directly', ir.node_name(out.producer), p.params.value), 0)
  end
  self.alias[out.id] = self.alias[src.id] or src.id
  self.alias_offset[out.id] = (self.alias_offset[src.id] or 0) + (elem_offset or 0)
  if self.alias_offset[out.id] == 0 then self.alias_offset[out.id] = nil end
  self:use(src)
end

-- Whether the step being lowered may write its output over tensor t's buffer (an in-place residual
-- add): t is an activation whose buffer (its own, or the one t is a view of) is read by nothing
-- after this step, through t or any other view of it.
function Lowering:can_overwrite(t)
  local root = self.alias[t.id] or t.id
  if self.alias_offset[t.id] or not self.tensor_producer[root] then return false end
  if (self.last_use[root] or 0) > self.node_index then return false end
  for id, r in pairs(self.alias) do
    if r == root and (self.last_use[id] or 0) > self.node_index then return false end
  end
  return true
end

function Lowering:weight(key, t, dims)
  local w = { key = key, tensor = t, index = #self.weights }
  self.weights[#self.weights + 1] = w
  return { storage = 'weights', weight = w, dims = dims }
end

function Lowering:bias(node, n)
  local key = node.params.bias
  local t = key and self.params[key] or tensor.new({ n })
  return self:weight((key or (node.params.weight .. '#zero_bias')), t, { { n, 1 } })
end

-- program = { input, output, steps, acts (arena tensors), weights }; every step names the graph node
-- it lowers (node), its algorithm and algorithm_reason (lower.choose's), its name and MACs. opts:
-- target (required), conv_algo (above).
function lower.lower(graph, opts)
  opts = opts or {}
  local T = targets.resolve(opts.target)
  local L = setmetatable({ params = graph.params, acts = {}, act_list = {}, weights = {}, alias = {}, alias_offset = {},
                          step = 0, target = T, records = schedules.load(T.string), conv_algo = opts.conv_algo, last_use = {},
                          tensor_producer = {} }, Lowering)
  -- for can_overwrite: the index of each tensor's last consumer (graph outputs: never), and which
  -- tensors an op computes (not the input, not a constant)
  for i, node in ipairs(graph.nodes) do
    for _, t in ipairs(node.inputs) do L.last_use[t.id] = i end
    if node.op ~= 'constant' then
      for _, t in ipairs(node.outputs) do L.tensor_producer[t.id] = true end
    end
  end
  for _, t in ipairs(graph.outputs) do L.last_use[t.id] = math.huge end
  local program = { name = graph.name, steps = {}, weights = L.weights, acts = L.act_list }
  if #graph.outputs ~= 1 then error('models with ' .. #graph.outputs .. ' outputs are not supported yet', 0) end
  local x = graph.input
  program.input = { shape = x.shape, act = L:use(x) }
  for i, node in ipairs(graph.nodes) do
    L.step = L.step + 1
    L.node_index = i
    if node.op == 'flatten' and (#node.inputs[1].shape == 2 or (node.inputs[1].shape[3] == 1 and node.inputs[1].shape[4] == 1)) then
      -- same memory in both layouts: an alias, no step
      L:alias_view(node.outputs[1], node.inputs[1], 0)
      L.step = L.step - 1
    elseif node.op == 'flatten' then
      local s = node.inputs[1].shape
      program.steps[#program.steps + 1] = { kind = 'hwc_to_chw', name = ir.node_name(node), node = node, macs = 0,
        algorithm = 'NHWC to NCHW copy', algorithm_reason = 'a flatten of a channels-innermost map',
        c = s[2], h = s[3], w = s[4], src = L:use(node.inputs[1]), dst = L:use(node.outputs[1]) }
    else
      local lowerer = ops.get(node.op).lower
      if not lowerer then
        error(string.format('%s: op %s has no kernel yet (unsupported)', node.where or ir.node_name(node), node.op), 0)
      end
      local choice = lower.choose(node, L)
      local generator, gparams, args
      if choice.algo then
        generator, gparams, args = winograd.lower(node, L, choice, lower)
      else
        generator, gparams, args = lowerer(node, L, choice)
      end
      if generator then
        program.steps[#program.steps + 1] = { kind = 'kernel', generator = generator, gparams = gparams,
          args = args, name = ir.node_name(node), op = node.op, node = node, macs = ops.get(node.op).macs(node),
          algorithm = choice.algorithm, algorithm_reason = choice.reason }
      else
        L.step = L.step - 1 -- an alias or a constant: no step
      end
    end
  end
  L.step = L.step + 1
  local out = graph.outputs[1]
  if L.alias_offset[out.id] or (out.producer and out.producer.op == 'constant') then
    error('the model output is a slice of a tensor or a parameter; not supported', 0)
  end
  program.output = { shape = out.shape, act = L:use(out) }
  program.last_step = L.step
  return program
end

return lower
