-- Lowering: the deploy graph becomes a program of steps over buffers.
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
local function act_dims(shape)
  if #shape == 4 then
    local c, h, w = shape[2], shape[3], shape[4]
    return { { c, 1 }, { w, c }, { h, c * w } }
  end
  local n, rows = shape[#shape], numel(shape) / shape[#shape]
  return { { n, 1 }, { rows, n } }
end

local function flat_dims(shape) return { { numel(shape), 1 } } end

local lowerers = {}

function lowerers.conv2d(node, L)
  local a = node.attrs
  local x, y = node.inputs[1], node.outputs[1]
  local W = L.params[node.params.weight]
  local cout, cig, kh, kw = W.shape[1], W.shape[2], W.shape[3], W.shape[4]
  local packed = tensor.new({ kh, kw, cig, cout })
  for co = 0, cout - 1 do
    for ci = 0, cig - 1 do
      for ky = 0, kh - 1 do
        for kx = 0, kw - 1 do
          packed.data[((ky * kw + kx) * cig + ci) * cout + co] = W.data[((co * cig + ci) * kh + ky) * kw + kx]
        end
      end
    end
  end
  local args = {
    L:act(x, act_dims(x.shape)),
    L:weight(node.params.weight .. '@hwio', packed, { { cout, 1 }, { cig, cout }, { kw, cout * cig }, { kh, cout * cig * kw } }),
    L:bias(node, cout),
  }
  if node.inputs[2] then args[#args + 1] = L:act(node.inputs[2], act_dims(y.shape)) end
  args[#args + 1] = L:act(y, act_dims(y.shape))
  return 'conv2d', {
    cin = a.cin, cout = a.cout, in_w = x.shape[4], in_h = x.shape[3], out_w = y.shape[4], out_h = y.shape[3],
    kw = a.kernel[2], kh = a.kernel[1], stride_x = a.stride[2], stride_y = a.stride[1],
    pad_x = a.padding[2], pad_y = a.padding[1], dil_x = a.dilation[2], dil_y = a.dilation[1],
    groups = a.groups, relu = a.relu and true or false, residual = node.inputs[2] ~= nil,
  }, args
end

function lowerers.pool2d(node, L)
  local a = node.attrs
  local x, y = node.inputs[1], node.outputs[1]
  return 'pool2d', {
    c = x.shape[2], in_w = x.shape[4], in_h = x.shape[3], out_w = y.shape[4], out_h = y.shape[3],
    kw = a.kernel[2], kh = a.kernel[1], stride_x = a.stride[2], stride_y = a.stride[1],
    pad_x = a.padding[2], pad_y = a.padding[1], op = a.mode,
    count_include_pad = a.count_include_pad and true or false, relu = a.relu and true or false,
  }, { L:act(x, act_dims(x.shape)), L:act(y, act_dims(y.shape)) }
end

function lowerers.global_avgpool(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  return 'global_avgpool', { c = x.shape[2], in_w = x.shape[4], in_h = x.shape[3] },
    { L:act(x, act_dims(x.shape)), L:act(y, flat_dims(y.shape)) }
end

function lowerers.linear(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  local cin, cout = node.attrs.cin, node.attrs.cout
  local W = L.params[node.params.weight]
  local packed = tensor.new({ cin, cout })
  for co = 0, cout - 1 do
    for ci = 0, cin - 1 do packed.data[ci * cout + co] = W.data[co * cin + ci] end
  end
  return 'linear', { cin = cin, cout = cout, rows = numel(x.shape) / cin, relu = node.attrs.relu and true or false },
    { L:act(x, act_dims(x.shape)), L:weight(node.params.weight .. '@t', packed, { { cout, 1 }, { cin, cout } }),
      L:bias(node, cout), L:act(y, act_dims(y.shape)) }
end

function lowerers.add(node, L)
  local a, b, y = node.inputs[1], node.inputs[2], node.outputs[1]
  local n = numel(y.shape)
  return 'eltwise', { n = n, op = node.attrs.relu and 'add_relu' or 'add' },
    { L:act(a, flat_dims(a.shape)), L:act(b, flat_dims(b.shape)), L:act(y, flat_dims(y.shape)) }
end

function lowerers.relu(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  local n = numel(y.shape)
  return 'eltwise', { n = n, op = 'relu' },
    { L:act(x, flat_dims(x.shape)), L:act(x, flat_dims(x.shape)), L:act(y, flat_dims(y.shape)) }
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
      local lowerer = lowerers[node.op]
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
