-- The graph IR.
--
-- A graph holds nodes in topological order (the order the trace recorded them), each with an op
-- name, input tensors, one output tensor, attributes and parameter keys; tensors carry a logical
-- PyTorch shape of one image (NCHW with N = 1) and their producer; graph.batch (default 1) is the
-- number of images a run takes, each tensor holding that many of its shape, image index outermost
-- (a [1,C,H,W] tensor of a batch-N graph is N x C x H x W). Parameters live in graph.params by key, so the
-- names users see in errors and in `foldc fold` output are the state_dict keys. Passes never mutate
-- a parameter tensor in place: they put new tensors under (new) keys, so a cloned graph shares
-- parameter data safely.
local ir = {}

local Graph = {}
Graph.__index = Graph

function ir.new_graph(name)
  return setmetatable({ name = name or 'model', nodes = {}, tensors = {}, params = {},
                        param_specs = {}, next_tensor = 1, next_node = 1, notes = {} }, Graph)
end

function Graph:new_tensor(shape, producer)
  local t = { id = self.next_tensor, shape = shape, producer = producer }
  self.next_tensor = self.next_tensor + 1
  self.tensors[t.id] = t
  return t
end

-- A fresh node id (never reused: the graph's counter).
function Graph:new_node_id()
  local id = self.next_node
  self.next_node = id + 1
  return id
end

function Graph:add_node(node)
  node.id = self:new_node_id()
  self.nodes[#self.nodes + 1] = node
  return node
end

-- Human name of a node for messages: module path, else op and description line.
function ir.node_name(node)
  return node.module and node.module ~= '' and node.module or (node.op .. '@' .. (node.where or '?'))
end

-- Map tensor id -> list of consumer nodes (graph outputs count as a consumer named false).
function Graph:consumers()
  local uses = {}
  for _, n in ipairs(self.nodes) do
    for _, t in ipairs(n.inputs) do
      uses[t.id] = uses[t.id] or {}
      table.insert(uses[t.id], n)
    end
  end
  for _, t in ipairs(self.outputs or {}) do
    uses[t.id] = uses[t.id] or {}
    table.insert(uses[t.id], false)
  end
  return uses
end

---------------------------------------------------------------------------------------------------
-- Rewrite helpers for the passes (compiler/passes/): every pass finds and moves nodes with these.

-- The one node consuming tensor t, given uses = graph:consumers(); nil when t has another consumer
-- or none, or is a graph output (a fused tensor is never written, so nobody else may read it).
function ir.single_use(uses, t)
  local u = uses[t.id]
  return u and #u == 1 and u[1] or nil
end

-- node -> its index in graph.nodes (the order a pass compares positions in).
function Graph:positions()
  local pos = {}
  for i, n in ipairs(self.nodes) do pos[n] = i end
  return pos
end

-- Remove `node` from the order (its output's uses are the caller's business: replace_uses first).
function Graph:remove_node(node)
  for i, n in ipairs(self.nodes) do
    if n == node then table.remove(self.nodes, i); return end
  end
  error('remove_node: node ' .. ir.node_name(node) .. ' is not in the graph', 0)
end

-- Put `new` in `old`'s place in the order (removing `new` from where it was, if anywhere): the
-- fused node runs where the node it absorbs ran, after all of both their inputs.
function Graph:replace_node(old, new)
  for i, n in ipairs(self.nodes) do
    if n == new then table.remove(self.nodes, i); break end
  end
  for i, n in ipairs(self.nodes) do
    if n == old then self.nodes[i] = new; return end
  end
  error('replace_node: node ' .. ir.node_name(old) .. ' is not in the graph', 0)
end

-- Fuse `consumer` (reading `producer`'s output) into `producer`, which takes the consumer's place
-- in the order (after every input of both) and its output's uses; the caller has set what the
-- producer now computes (attributes, inputs).
function Graph:absorb(producer, consumer)
  self:replace_node(consumer, producer)
  self:replace_uses(consumer.outputs[1], producer.outputs[1])
end

-- Drop `node` from the order, its output's uses going to tensor t (default: its first input): an
-- element-wise node whose work its producer took over.
function Graph:bypass(node, t)
  self:replace_uses(node.outputs[1], t or node.inputs[1])
  self:remove_node(node)
end

-- Swap two steps of a chain x -> a -> m -> b -> y into x -> b -> m -> a -> y, where b is the only
-- reader of a's output m: b now reads a's first input x and writes m (its new shape `shape`), a
-- reads m and writes y; each keeps its other inputs and attributes, and they trade places in the
-- order (a commuting rewrite: pool_before_conv, pad_after_linear).
function Graph:swap(a, b, shape)
  local x, m, y = a.inputs[1], a.outputs[1], b.outputs[1]
  b.inputs[1], b.outputs[1] = x, m
  m.shape, m.producer = shape, b
  a.inputs[1], a.outputs[1] = m, y
  y.producer = a
  for i, n in ipairs(self.nodes) do
    if n == a then self.nodes[i] = b elseif n == b then self.nodes[i] = a end
  end
end

-- Replace every use of tensor `old` by `new` (node inputs and graph outputs).
function Graph:replace_uses(old, new)
  for _, n in ipairs(self.nodes) do
    for i, t in ipairs(n.inputs) do
      if t == old then n.inputs[i] = new end
    end
  end
  for i, t in ipairs(self.outputs) do
    if t == old then self.outputs[i] = new end
  end
end

-- Drop nodes whose outputs reach no graph output; drop tensors nobody references.
function Graph:prune()
  local live = {}
  for _, t in ipairs(self.outputs) do live[t.id] = true end
  local keep = {}
  for i = #self.nodes, 1, -1 do
    local n = self.nodes[i]
    if live[n.outputs[1].id] then
      keep[#keep + 1] = n
      for _, t in ipairs(n.inputs) do live[t.id] = true end
    end
  end
  local nodes = {}
  for i = #keep, 1, -1 do nodes[#nodes + 1] = keep[i] end
  self.nodes = nodes
  live[self.input.id] = true
  for id in pairs(self.tensors) do
    if not live[id] then self.tensors[id] = nil end
  end
  -- Parameters no node refers to any more (folded away) are dropped too.
  local used = {}
  for _, n in ipairs(self.nodes) do
    for _, key in pairs(n.params) do used[key] = true end
  end
  for key in pairs(self.params) do
    if not used[key] then self.params[key] = nil end
  end
end

-- Deep copy of the structure; parameter tensors are shared (passes replace, never mutate).
function Graph:clone()
  local g = ir.new_graph(self.name)
  g.next_tensor, g.next_node, g.param_specs, g.batch = self.next_tensor, self.next_node, self.param_specs, self.batch
  local tmap = {}
  local function tcopy(t)
    if not t then return nil end
    if not tmap[t.id] then
      local c = {}
      for k, v in pairs(t) do c[k] = v end
      c.producer = nil
      tmap[t.id] = c
      g.tensors[c.id] = c
    end
    return tmap[t.id]
  end
  local function deep(v)
    if type(v) ~= 'table' then return v end
    local c = {}
    for k, x in pairs(v) do c[k] = deep(x) end
    return c
  end
  g.input = tcopy(self.input)
  for _, n in ipairs(self.nodes) do
    local c = {}
    for k, v in pairs(n) do c[k] = v end
    c.attrs, c.params = deep(n.attrs), deep(n.params)
    c.inputs, c.outputs = {}, {}
    for i, t in ipairs(n.inputs) do c.inputs[i] = tcopy(t) end
    for i, t in ipairs(n.outputs) do c.outputs[i] = tcopy(t); c.outputs[i].producer = c end
    g.nodes[#g.nodes + 1] = c
  end
  g.outputs = {}
  for i, t in ipairs(self.outputs) do g.outputs[i] = tcopy(t) end
  for k, v in pairs(self.params) do g.params[k] = v end
  for k, v in pairs(self.notes) do g.notes[k] = v end
  return g
end

-- Images per run (graph.batch).
function Graph:images() return self.batch or 1 end

-- The shape of tensor t across the batch: its first dimension times the images (a constant, a
-- parameter used as a tensor, is one copy for all images).
function Graph:batched_shape(t)
  local s = {}
  for i, d in ipairs(t.shape) do s[i] = d end
  if not (t.producer and t.producer.op == 'constant') then s[1] = s[1] * self:images() end
  return s
end

-- Multiply-accumulates of the whole graph (as the ops count them).
function Graph:macs()
  local ops = require 'ops'
  local total = 0
  for _, n in ipairs(self.nodes) do total = total + ops.get(n.op).macs(n) end
  return total * self:images()
end

-- Number of parameters the graph's nodes use (after folding: the deploy count).
function Graph:param_count()
  local total = 0
  for _, p in pairs(self.params) do total = total + p.numel end
  return total
end

return ir
