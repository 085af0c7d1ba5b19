-- Lowering: the deploy graph becomes a program of steps over buffers. Each op's `lower(node, L)`
-- (in ops/<op>.lua) returns its generator, generator parameters and argument views.
--   * activations live channels-innermost: a [1,C,H,W] tensor is the Halide buffer (c, x, y);
--     a [1,...,N] tensor is (n, rows);
--   * weights are repacked into the layouts the kernels read (conv HWIO: dims (co, ci, kx, ky);
--     linear transposed: dims (co, ci)), co innermost, so every kernel streams them with vector loads;
--   * each kernel step names its generator, its shape-specialising parameters and its arguments,
--     each argument a view (dims as {extent, stride}) of an activation or a weights tensor;
--   * step 0 converts the NCHW input into the arena, the last step writes the NCHW output.
local tensor = require 'tensor'
local ops = require 'ops'
local ir = require 'ir'

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

function Lowering:act(t, dims)
  return { storage = 'arena', act = self:use(t), dims = dims }
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

-- program = { input, output, steps, acts (arena tensors), weights }
function lower.lower(graph)
  local L = setmetatable({ params = graph.params, acts = {}, act_list = {}, weights = {}, alias = {}, step = 0 }, Lowering)
  local program = { name = graph.name, steps = {}, weights = L.weights, acts = L.act_list, graph = graph }
  if #graph.outputs ~= 1 then error('models with ' .. #graph.outputs .. ' outputs are not supported yet', 0) end
  local x = graph.input
  program.input = { shape = x.shape, act = L:use(x) }
  for _, node in ipairs(graph.nodes) do
    L.step = L.step + 1
    if node.op == 'flatten' and (#node.inputs[1].shape == 2 or (node.inputs[1].shape[3] == 1 and node.inputs[1].shape[4] == 1)) then
      -- same memory in both layouts: an alias, no step
      L.alias[node.outputs[1].id] = L.alias[node.inputs[1].id] or node.inputs[1].id
      L:use(node.inputs[1])
      L.step = L.step - 1
    elseif node.op == 'flatten' then
      local s = node.inputs[1].shape
      program.steps[#program.steps + 1] = { kind = 'hwc_to_chw', name = ir.node_name(node), macs = 0,
        c = s[2], h = s[3], w = s[4], src = L:use(node.inputs[1]), dst = L:use(node.outputs[1]) }
    else
      local lowerer = ops.get(node.op).lower
      if not lowerer then
        error(string.format('%s: op %s has no kernel yet (unsupported)', node.where or ir.node_name(node), node.op), 0)
      end
      local generator, gparams, args = lowerer(node, L)
      program.steps[#program.steps + 1] = { kind = 'kernel', generator = generator, gparams = gparams,
        args = args, name = ir.node_name(node), op = node.op, macs = ops.get(node.op).macs(node) }
    end
  end
  L.step = L.step + 1
  local out = graph.outputs[1]
  program.output = { shape = out.shape, act = L:use(out) }
  program.last_step = L.step
  return program
end

return lower
