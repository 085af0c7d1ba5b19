-- levit_attention_layout: LeViT's attention (ops/levit_attention.lua) in the attention kernel's form
-- (compiler/halide/attention.cpp: one qkv [N, 3 D] laid out q | k | v, heads of one dim E, as many
-- queries as keys, an additive bias per head, query and key). Exact: rows of the Linear before it
-- are reordered and zero rows added, which adds exact zeros to the scores; the queries are
-- computed on every token and the subsampled ones kept (Linear, attention rows and Hardswish are
-- per token, so subsampling before or after them gives the same numbers):
--   qkv Linear [N, H (2 kd + vd)] per head q | k | v      -> [N, 3 H E], q and k zero-padded to E = vd
--   AttentionSubsample: kv Linear (x), q Linear (x[::s, ::s])
--                                                         -> one Linear on x, rows q | k | v as above,
--                                                            the attention over all N queries, then
--                                                            the token grid subsampled by s
-- Runs after fold_bn (the Linears have their biases) and before the fusions. A form it cannot
-- make (kd > vd, a Linear with another consumer) is left to the lowering, which refuses it.
local tensor = require 'tensor'
local ir = require 'ir'

local pass = {}

-- Rows of the new weight: for part s (0 q, 1 k, 2 v), head h, element e < E, the source Linear and
-- row in it (nil: a zero row).
local function regroup(graph, rows_of, cin, H, E, key_w, key_b)
  local W, b = tensor.new({ 3 * H * E, cin }), tensor.new({ 3 * H * E })
  for s = 0, 2 do
    for h = 0, H - 1 do
      for e = 0, E - 1 do
        local r = (s * H + h) * E + e
        local src, row = rows_of(s, h, e)
        if src then
          local sw, sb = graph.params[src.params.weight].data, src.params.bias and graph.params[src.params.bias].data
          for i = 0, cin - 1 do W.data[r * cin + i] = sw[row * cin + i] end
          b.data[r] = sb and sb[row] or 0
        end
      end
    end
  end
  graph.params[key_w], graph.params[key_b] = W, b
end

local function plain_linear(uses, t)
  local p = t.producer
  return p and p.op == 'linear' and not p.attrs.act and not p.inputs[2] and ir.single_use(uses, t) and p or nil
end

-- Whether map [1, C, h, w] and tokens [1, h w, C] are one buffer: a view of the other.
local function same_grid(map, tokens)
  local m, t = map.producer, tokens.producer
  return (m and m.op == 'to_map' and m.inputs[1] == tokens) or (t and t.op == 'to_tokens' and t.inputs[1] == map) or false
end

function pass.run(graph, report)
  local done = 0
  local uses = graph:consumers()
  local i = 1
  while i <= #graph.nodes do
    local a = graph.nodes[i]
    local at = a.attrs
    if a.op == 'levit_attention' and not at.kernel_layout and at.value_dim >= at.key_dim then
      local H, kd, vd, E = at.heads, at.key_dim, at.value_dim, at.value_dim
      local kv = plain_linear(uses, a.inputs[1])
      local q = a.inputs[2] and plain_linear(uses, a.inputs[2])
      -- the subsampled queries: to_tokens(pool2d(to_map(x))) of the tokens x the kv Linear reads
      local tt = q and q.inputs[1].producer
      local pool = tt and tt.op == 'to_tokens' and tt.inputs[1].producer
      local sub_ok = pool and pool.op == 'pool2d' and kv and same_grid(pool.inputs[1], kv.inputs[1])
      if kv and (not a.inputs[2] or sub_ok) then
        local cin = kv.attrs.cin
        local per = a.inputs[2] and kd + vd or 2 * kd + vd
        local rows_of = function(s, h, e)
          if s < 2 and e >= kd then return nil end
          if a.inputs[2] and s == 0 then return q, h * kd + e end
          if a.inputs[2] then return kv, h * per + (s == 1 and e or kd + e) end
          return kv, h * per + s * kd + e
        end
        -- new keys: the regrouped Linear is not the checkpoint's (other rows, another shape)
        local key_w = kv.params.weight .. '@heads'
        local key_b = (kv.params.bias or kv.params.weight:gsub('weight$', 'bias')) .. '@heads'
        regroup(graph, rows_of, cin, H, E, key_w, key_b)
        kv.params.weight, kv.params.bias = key_w, key_b
        kv.attrs.cout = 3 * H * E
        kv.outputs[1].shape = { 1, kv.outputs[1].shape[2], 3 * H * E }
        at.kernel_layout, at.head_dim = true, E
        if a.inputs[2] then
          -- all N queries, then the grid subsampled as the queries were
          local old = a.outputs[1]
          local n = kv.outputs[1].shape[2]
          local full = graph:new_tensor({ 1, n, H * vd }, a)
          a.outputs, a.inputs[2] = { full }, nil
          local function node(op, x, shape, attrs)
            local t = graph:new_tensor(shape)
            local nd = { op = op, inputs = { x }, outputs = { t }, attrs = attrs, params = {}, module = a.module,
                         where = a.where, id = graph:new_node_id() }
            t.producer = nd
            return nd, t
          end
          local ps = pool.outputs[1].shape
          local n1, m = node('to_map', full, { 1, H * vd, at.res, at.res }, { h = at.res, w = at.res })
          local pattrs = {}
          for k, v in pairs(pool.attrs) do pattrs[k] = v end
          local n2, pooled = node('pool2d', m, { 1, H * vd, ps[3], ps[4] }, pattrs)
          local n3 = { op = 'to_tokens', inputs = { pooled }, outputs = { old }, attrs = {}, params = {},
                       module = a.module, where = a.where, id = graph:new_node_id() }
          old.producer = n3
          table.insert(graph.nodes, i + 1, n1)
          table.insert(graph.nodes, i + 2, n2)
          table.insert(graph.nodes, i + 3, n3)
        end
        done = done + 1
        uses = graph:consumers()
      end
    end
    i = i + 1
  end
  graph:prune()
  if report then report.levit_attention = (report.levit_attention or 0) + done end
  return graph
end

return pass
