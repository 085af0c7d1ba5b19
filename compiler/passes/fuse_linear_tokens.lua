-- fuse_linear_tokens: Linear layers over many token rows become `linear_tokens` (a cache-blocked
-- GEMM kernel) and take their element-wise successors as epilogue, saving a pass over memory each:
--   gelu(linear(x))        -> linear_tokens(x) with gelu      (MLP fc1, the PfLayer mixer's qkv)
--   add(linear(x), r)      -> linear_tokens(x) with residual r (attention proj, MLP fc2)
--   add(gelu(linear(x)), r) likewise with both.
-- Only for at least 8 rows and cout a multiple of the kernel's vector width on every target
-- (LANES: halide/linear_tokens.cpp needs whole vectors of output channels; the deploy graph is
-- the same for every target of a build); a fused tensor must have no other consumer and not be a
-- graph output. Exact: the same operations in the same order, per element.
local targets = require 'targets'

local fuse = {}

local MIN_ROWS = 8

-- The widest vector, in f32 lanes, of any tier a target family names (targets/<family>.lua).
local LANES = 1
for _, f in pairs(targets.families) do
  for _, tiers in pairs(f.names) do
    for _, tier in ipairs(tiers) do LANES = math.max(LANES, f.lanes(tier)) end
  end
end

local function single_use(uses, t)
  local u = uses[t.id]
  return u and #u == 1 and u[1] ~= false and u[1]
end

local function index_of(graph, node)
  for i, n in ipairs(graph.nodes) do if n == node then return i end end
end

function fuse.run(graph, report)
  local converted, fused = 0, 0
  for _, n in ipairs(graph.nodes) do
    local s = n.op == 'linear' and n.inputs[1].shape or {}
    local rows = 1
    for i = 1, #s - 1 do rows = rows * s[i] end
    if n.op == 'linear' and not n.attrs.relu and rows >= MIN_ROWS and n.attrs.cout % LANES == 0 then
      n.op = 'linear_tokens'
      converted = converted + 1
    end
  end
  local uses = graph:consumers()
  for _, n in ipairs({ unpack(graph.nodes) }) do
    if n.op == 'linear_tokens' then
      local c = single_use(uses, n.outputs[1])
      if c and c.op == 'gelu' then
        n.attrs.gelu = true
        graph:replace_uses(c.outputs[1], n.outputs[1])
        table.remove(graph.nodes, index_of(graph, c))
        fused = fused + 1
        uses = graph:consumers()
        c = single_use(uses, n.outputs[1])
      end
      if c and c.op == 'add' and not c.attrs.relu and not n.inputs[2] then
        local other = c.inputs[1] == n.outputs[1] and c.inputs[2] or c.inputs[1]
        if other ~= n.outputs[1] then
          n.inputs[2] = other
          table.remove(graph.nodes, index_of(graph, n))
          graph.nodes[index_of(graph, c)] = n
          graph:replace_uses(c.outputs[1], n.outputs[1])
          fused = fused + 1
          uses = graph:consumers()
        end
      end
    end
  end
  graph:prune()
  if report then
    report.linear_tokens = (report.linear_tokens or 0) + converted
    report.fused_linear_epilogue = (report.fused_linear_epilogue or 0) + fused
  end
  return graph
end

return fuse
