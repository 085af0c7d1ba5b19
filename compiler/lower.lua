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
--     afterwards (Lowering:can_overwrite): one buffer less alive, its lines read and written once;
--   * a channel concatenation's inputs are written by their producers straight into their channel
--     slices of its buffer (place_concats): a slice is a view whose pixels lie row_channels floats
--     apart, which the kernels that read or write one take as in_cs / out_cs.
--   * a batch of N images (graph.batch): the leading steps whose weights are smaller than their
--     activations of one image (a CNN's early layers: batching would not save weight loads) run
--     image-major, all of them on image 0, then on image 1, ... (lower.image_major), so each
--     image's activations stay in cache as at batch 1; the buffers only they use hold one image.
--     From the first step whose weights outweigh its activations on, steps run layer-major over
--     buffers of N images (image index outermost, each image the batch-1 buffer): lower.batch_step
--     runs the convolutions over an outer image dimension and the GEMMs over N times the rows, so
--     each weight tile is loaded once for all N images, and the other kernels once per image on
--     offset views (a concatenation's slices among them).
-- opts.target (the build's resolved target string) becomes L.target, a target object
-- (compiler/targets/). A target with a GPU (T.gpu) is lowered once for both its GPU and its CPU
-- kernels, with the GPU's choices: direct convolutions (Winograd has no GPU schedule), batch 1.
-- opts.conv_algo (L.conv_algo) forces one algorithm for every eligible conv
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
-- nil: direct) and super_groups (ops/conv2d.lua: groups narrower than a vector run as wider ones).
function lower.choose(node, L)
  local a, T = node.attrs, L.target
  local one = 'the only kernel for ' .. node.op
  if node.op == 'conv2d' then
    local key = lower.algo_key(node, T)
    local rec = L.records[key]
    local m, reason
    if T.gpu then
      -- one lowering serves the GPU and the CPU kernels of a GPU bundle: the GPU's algorithms
      reason = 'GPU target (' .. T.gpu.api .. '): direct (conv2d_winograd has no GPU schedule)'
    else
      m, reason = winograd.choose(node, { mode = L.conv_algo, record = rec and rec.algo, target = T,
                                          where = rec and (lower.schedules_file(T) .. ': ' .. key) })
    end
    local sg = not m and ops.get('conv2d').super_groups(a, T.lanes) or nil
    return { w_block = lower.weight_block(T, a.cout, a.cin > a.groups), algo = m, reason = reason, super_groups = sg,
             algorithm = m and string.format('winograd F(%dx%d)', m, m)
               or sg and string.format('grouped as %d block-diagonal groups', sg) or direct_kind(a) }
  elseif node.op == 'conv2d_proj' then
    return { w_block = lower.weight_block(T, a.cout, a.cin > a.groups), algorithm = direct_kind(a), reason = one }
  elseif node.op == 'linear_tokens' then
    return { w_block = lower.weight_block(T, a.cout, true), algorithm = 'gemm', reason = one }
  elseif node.op == 'linear' or node.op == 'token_linear' then
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
    -- sized by the root tensor (a view, a concatenation's slice, may be used first); image: the
    -- floats of one image; the buffer holds L.batch images
    local image = numel(self.tensors[root].shape)
    a = { id = root, bytes = 4 * image * self.batch, image = image, first = self.step, last = self.step }
    self.acts[root] = a
    self.act_list[#self.act_list + 1] = a
  end
  a.last = math.max(a.last, self.step)
  return a
end

-- A view of an arena buffer of `bytes` that only the step being lowered uses (a kernel's scratch,
-- written and read within the step; its second output, read by nothing else), with dims.
function Lowering:scratch(bytes, dims)
  -- image 0: one scratch for every image of a batch (a step's calls run one after the other)
  local a = { id = 'scratch:' .. self.step .. ':' .. (#self.act_list + 1), bytes = bytes, image = 0, scratch = true,
              first = self.step, last = self.step }
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
    return { storage = 'weights', weight = w.weight, dims = dims, constant = true }
  end
  local rc = self.row_channels[t.id]
  if rc then
    -- a channel slice: the map's pixels lie rc floats apart
    if #dims == 3 and dims[1][2] == 1 then
      dims = { dims[1], { dims[2][1], rc }, { dims[3][1], rc * dims[2][1] } }
    elseif t.shape[3] ~= 1 or t.shape[4] ~= 1 then
      error(string.format('%s: reads %s, a channel slice of a concatenation, as flat memory (not supported)',
        ir.node_name(self.node), table.concat(t.shape, 'x')), 0)
    end
    self.slice_args = self.slice_args + 1
  end
  return { storage = 'arena', act = self:use(t), dims = dims, elem_offset = self.alias_offset[t.id] }
end

-- The pixel stride of tensor t's buffer when t is a channel slice (place_concats), else nil: a
-- kernel's in_cs / out_cs.
function Lowering:row_channels_of(t)
  return self.row_channels[t.id]
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
  self.row_channels[out.id] = self.row_channels[src.id]
  if self.alias_offset[out.id] == 0 then self.alias_offset[out.id] = nil end
  self:use(src)
end

-- Let tensor `out` be channels [c0, c0 + out's) of map `src` (a channel slice: pixels as far apart as
-- in src's buffer). An op's lower() calls this and returns nothing: no step.
function Lowering:channel_view(out, src, c0)
  self:alias_view(out, src, c0)
  local rc = self.row_channels[src.id] or src.shape[2]
  self.row_channels[out.id] = rc ~= out.shape[2] and rc or nil
end

-- Whether the step being lowered may write its output over tensor t's buffer (an in-place residual
-- add): t is an activation whose buffer (its own, or the one t is a view of) is read by nothing
-- after this step, through t or any other view of it.
function Lowering:can_overwrite(t)
  local root = self.alias[t.id] or t.id
  if self.alias_offset[t.id] or self.row_channels[t.id] or not self.tensor_producer[root] then return false end
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

-- Concatenations without copies (ops/concat.lua). In reverse order, so that a concatenation's own
-- place is known before its inputs are placed: a concat whose inputs already lie side by side in one
-- buffer (DenseNet: layer i's input is a prefix of the block's final concatenation) is a view of
-- them; otherwise it is a buffer (or its own slice of a later one), and each input is placed in its
-- channel slice, written there by its producer. A tensor may be a slice when its producer's kernel
-- writes one (conv2d without a residual, pool2d), it is no graph output, and, when its pixels are
-- wider than its channels, every consumer's kernel reads one (conv2d as its input, conv2d_proj,
-- pool2d, concat, channel_shuffle).
-- Anything else is refused at the concat with one line (a copy into the slice is not done yet).
local SLICE_WRITERS = { conv2d = true, pool2d = true }
local SLICE_READERS = { conv2d = true, conv2d_proj = true, pool2d = true, concat = true, channel_shuffle = true }

local function place_concats(graph, L)
  local uses = graph:consumers()
  local function place_of(t)
    return L.alias[t.id] or t.id, L.alias_offset[t.id] or 0, L.row_channels[t.id] or t.shape[2]
  end
  local function readers_ok(t, rc)
    if rc == t.shape[2] then return true end
    for _, n in ipairs(uses[t.id] or {}) do
      if not n or not SLICE_READERS[n.op] or (n.op == 'conv2d' and n.inputs[1] ~= t) then return false end
    end
    return true
  end
  local function place(t, root, c0, rc)
    L.alias[t.id] = root
    L.alias_offset[t.id] = c0 ~= 0 and c0 or nil
    L.row_channels[t.id] = rc ~= t.shape[2] and rc or nil
  end
  local outputs = {}
  for _, t in ipairs(graph.outputs) do outputs[t.id] = true end
  for i = #graph.nodes, 1, -1 do
    local node = graph.nodes[i]
    if node.op == 'concat' then
      local y = node.outputs[1]
      -- already side by side in one buffer: a view
      local root, c0, rc = place_of(node.inputs[1])
      local side_by_side = L.alias[node.inputs[1].id] ~= nil
      local at = c0
      for _, x in ipairs(node.inputs) do
        local r, o, w = place_of(x)
        side_by_side = side_by_side and L.alias[x.id] ~= nil and r == root and o == at and w == rc
        at = at + x.shape[2]
      end
      if side_by_side and not L.alias[y.id] and not outputs[y.id] and readers_ok(y, rc) then
        place(y, root, c0, rc)
      else
        local yroot, y0, yrc = place_of(y)
        local off, seen = y0, {}
        for k, x in ipairs(node.inputs) do
          local p = x.producer
          local ok = p and SLICE_WRITERS[p.op] and not p.inputs[2] and not outputs[x.id] and not seen[x]
            and readers_ok(x, yrc)
          local r, o = place_of(x)
          if L.alias[x.id] then ok = r == yroot and o == off end
          if not ok then
            error(string.format('%s: input %d of the concatenation (%s) cannot be written in place into its '
              .. 'channel slice (a copy is not supported yet)', node.where or ir.node_name(node), k,
              p and ir.node_name(p) or 'the model input'), 0)
          end
          if not L.alias[x.id] then place(x, yroot, off, yrc) end
          seen[x] = true
          off = off + x.shape[2]
        end
      end
    end
  end
end

-- How a kernel runs a batch (lower.batch_step): the convolutions take an outer image dimension
-- (generator parameter batch), the GEMMs the images' rows as more rows (linear_tokens also told
-- the batch: it blocks the rows then, halide/linear_tokens.cpp).
local BATCHED = { conv2d = 'images', conv2d_winograd = 'images', linear = 'rows', linear_tokens = 'rows' }
local TOLD = { conv2d = true, conv2d_winograd = true, linear_tokens = true }

-- Make a kernel step run all n images. A BATCHED kernel whose activation arguments are whole
-- images (not a slice of a larger buffer, whose images would not be one after the other) runs
-- them in one call: batch = n and an image dimension on those views (its stride: one image), or
-- rows times n; one that reads a constant as an activation (a position embedding added in a conv's
-- epilogue: one copy for all images) does not. Any other step runs once per image (step.images = n; the glue moves each
-- activation view by one image of its buffer per call; weights views stay).
function lower.batch_step(step, n)
  if n == 1 then return end
  local how = BATCHED[step.generator]
  -- a Linear over the token axis (ops/token_linear.lua) multiplies each image's own tokens: per image
  if step.gparams.row_bias then how = nil end
  for _, arg in ipairs(step.args) do
    if arg.storage == 'arena' then
      local e = 1
      for _, d in ipairs(arg.dims) do e = e * d[1] end
      if arg.elem_offset or e ~= arg.act.image then how = nil end
    elseif arg.constant then
      how = nil
    end
  end
  if not how then
    step.images = n
    return
  end
  -- the batch-1 kernel's parameters, whose schedule record the batched kernel takes (kernels.compile)
  step.gparams_one = {}
  for k, v in pairs(step.gparams) do step.gparams_one[k] = v end
  if how == 'rows' then step.gparams.rows = step.gparams.rows * n end
  if TOLD[step.generator] then step.gparams.batch = n end
  for _, arg in ipairs(step.args) do
    if arg.storage == 'arena' then
      local dims = {}
      for d, dim in ipairs(arg.dims) do dims[d] = { dim[1], dim[2] } end
      if how == 'images' then
        dims[#dims + 1] = { n, arg.act.image }
      else
        dims[#dims][1] = dims[#dims][1] * n
      end
      arg.dims = dims
    end
  end
end

-- Whether a kernel step's weights outweigh its activations of one image (batching it saves loads).
local function weight_heavy(step)
  local w, a = 0, 0
  for _, arg in ipairs(step.args) do
    local e = 1
    for _, d in ipairs(arg.dims) do e = e * d[1] end
    if arg.storage == 'arena' then a = a + 4 * e elseif not arg.constant then w = w + 4 * e end
  end
  return w > a
end

-- Bytes a layer must move at the least, from the graph's shapes (a roofline's compulsory traffic:
-- Williams, Waterman and Patterson, "Roofline", CACM 2009): every activation input read once, every
-- parameter read once, the output written once, fp32, over the N images (parameters once). What a
-- kernel moves beyond that (re-reads of tiles that left the cache, Winograd's transformed weights,
-- zero-widened groups) is its own inefficiency, so GB/s against this says how close a memory-bound
-- layer (a depthwise conv, a gate, a pool) runs to the machine's bandwidth.
function lower.step_bytes(node, params, N)
  local n = 0
  local function add(shape, images)
    local e = images
    for _, d in ipairs(shape) do e = e * d end
    n = n + e
  end
  for _, t in ipairs(node.inputs) do add(t.shape, (t.producer and t.producer.op == 'constant') and 1 or N) end
  for _, key in pairs(node.params or {}) do
    if params[key] then n = n + params[key].numel end
  end
  add(node.outputs[1].shape, N)
  return 4 * n
end

-- The image-major prefix (steps 1..k, see the top comment): buffers used only inside it hold one
-- image, reused by each image in turn (act.one_image); every other buffer it touches is kept alive
-- over the whole prefix (from step 0), since image n + 1 runs the prefix after image n wrote it.
function lower.image_major(acts, k)
  if k == 0 then return end
  for _, a in ipairs(acts) do
    if a.scratch then -- lives in its step alone, the same for every image
    elseif a.first >= 1 and a.last <= k then
      a.one_image, a.bytes = true, 4 * a.image
    elseif a.first <= k then
      a.first, a.last = 0, math.max(a.last, k)
    end
  end
end

-- program = { input, output, steps, acts (arena tensors), weights, batch, image_major (the
-- number of leading steps run image-major) }; every step names the graph node
-- it lowers (node), its algorithm and algorithm_reason (lower.choose's), its name, MACs and bytes
-- (lower.step_bytes). opts:
-- target (required), conv_algo (above).
function lower.lower(graph, opts)
  opts = opts or {}
  local T = targets.resolve(opts.target)
  local N = graph:images()
  if T.gpu and N > 1 then
    error('--target ' .. T.gpu.api .. ': batch ' .. N .. ' is not supported on GPU targets yet (batch 1 only)', 0)
  end
  local L = setmetatable({ params = graph.params, acts = {}, act_list = {}, weights = {}, alias = {}, alias_offset = {},
                          step = 0, batch = N, target = T, records = schedules.load(T.string), conv_algo = opts.conv_algo, last_use = {},
                          tensor_producer = {}, row_channels = {}, slice_args = 0, tensors = graph.tensors }, Lowering)
  -- for can_overwrite: the index of each tensor's last consumer (graph outputs: never), and which
  -- tensors an op computes (not the input, not a constant)
  for i, node in ipairs(graph.nodes) do
    for _, t in ipairs(node.inputs) do L.last_use[t.id] = i end
    if node.op ~= 'constant' then
      for _, t in ipairs(node.outputs) do L.tensor_producer[t.id] = true end
    end
  end
  for _, t in ipairs(graph.outputs) do L.last_use[t.id] = math.huge end
  local program = { name = graph.name, steps = {}, weights = L.weights, acts = L.act_list, batch = N, image_major = 0 }
  local image_major = N > 1
  if #graph.outputs ~= 1 then error('models with ' .. #graph.outputs .. ' outputs are not supported yet', 0) end
  place_concats(graph, L)
  local x = graph.input
  program.input = { shape = graph:batched_shape(x), act = L:use(x) }
  for i, node in ipairs(graph.nodes) do
    L.step = L.step + 1
    L.node_index = i
    if node.op == 'flatten' and (#node.inputs[1].shape == 2 or (node.inputs[1].shape[3] == 1 and node.inputs[1].shape[4] == 1)) then
      -- same memory in both layouts: an alias, no step
      L:alias_view(node.outputs[1], node.inputs[1], 0)
      L.step = L.step - 1
    elseif node.op == 'flatten' then
      local s = node.inputs[1].shape
      if L.row_channels[node.inputs[1].id] then
        error(string.format('%s: a flatten of a channel slice is not supported', node.where or ir.node_name(node)), 0)
      end
      program.steps[#program.steps + 1] = { kind = 'hwc_to_chw', name = ir.node_name(node), node = node, macs = 0,
        bytes = lower.step_bytes(node, L.params, N), algorithm = 'NHWC to NCHW copy', algorithm_reason = 'a flatten of a channels-innermost map',
        c = s[2], h = s[3], w = s[4], src = L:use(node.inputs[1]), dst = L:use(node.outputs[1]), images = N,
        image_major = image_major or nil }
    else
      local lowerer = ops.get(node.op).lower
      if not lowerer then
        error(string.format('%s: op %s has no kernel yet (unsupported)', node.where or ir.node_name(node), node.op), 0)
      end
      local choice = lower.choose(node, L)
      local generator, gparams, args
      L.node, L.slice_args = node, 0
      if choice.algo then
        generator, gparams, args = winograd.lower(node, L, choice, lower)
      else
        generator, gparams, args = lowerer(node, L, choice)
      end
      local strided = false
      for k in pairs(gparams or {}) do strided = strided or k:match('_cs') ~= nil end
      if L.slice_args > 0 and not strided then
        error(string.format('%s: op %s cannot read or write a channel slice of a concatenation (not supported)',
          node.where or ir.node_name(node), node.op), 0)
      end
      if generator then
        local step = { kind = 'kernel', generator = generator, gparams = gparams,
          args = args, name = ir.node_name(node), op = node.op, node = node, macs = ops.get(node.op).macs(node) * N,
          bytes = lower.step_bytes(node, L.params, N), algorithm = choice.algorithm, algorithm_reason = choice.reason }
        if image_major and weight_heavy(step) then image_major = false end
        if image_major then
          step.image_major = true
        else
          lower.batch_step(step, N)
        end
        program.steps[#program.steps + 1] = step
      else
        L.step = L.step - 1 -- an alias or a constant: no step
      end
    end
  end
  L.step = L.step + 1
  local out = graph.outputs[1]
  if L.alias_offset[out.id] or L.row_channels[out.id] or (out.producer and out.producer.op == 'constant') then
    error('the model output is a slice of a tensor or a parameter; not supported', 0)
  end
  program.output = { shape = graph:batched_shape(out), act = L:use(out) }
  program.last_step = L.step
  for i, s in ipairs(program.steps) do
    if s.image_major then program.image_major = i end
  end
  lower.image_major(L.act_list, program.image_major)
  return program
end

return lower
