-- fold_token_transpose: a Linear on a transposed token view is a Linear over the token axis, and two
-- transposes cancel (exact: the same sums, no data moved; MLP-Mixer's token-mixing MLP,
-- Tolstikhin et al. 2021):
--   linear(transpose(x))        -> transpose(token_linear(x))   (W acts from the left: Y = W X)
--   transpose(transpose(z))     -> z   (first: a Linear on it stays a Linear over the channels)
-- so transpose -> fc1 (+GELU, fused before this pass) -> fc2 -> transpose becomes two token_linear
-- GEMMs on the token-major layout, and the residual add after it is fused by fuse_linear_tokens.
-- Runs after fuse_epilogue (the activation is then in the Linear) and before fuse_linear_tokens.
-- Only where the channels are whole vectors on every target (the kernel vectorises over them,
-- fuse_linear_tokens.LANES); a transpose left over is refused at lowering with one line.
local fuse_linear_tokens = require 'passes.fuse_linear_tokens'

local fold = {}

function fold.run(graph, report)
  local moved = 0
  local i = 1
  while i <= #graph.nodes do
    local n = graph.nodes[i]
    local t = n.op == 'linear' and n.inputs[1].producer
    local tt = t and t.op == 'transpose_tokens' and t.inputs[1].producer
    if tt and tt.op == 'transpose_tokens' then
      n.inputs[1] = tt.inputs[1] -- a Linear on a transpose of a transpose: on the tokens themselves
    elseif t and t.op == 'transpose_tokens' and not n.inputs[2] and t.inputs[1].shape[3] % fuse_linear_tokens.LANES == 0 then
      local x = t.inputs[1]
      local old = n.outputs[1]
      local y = graph:new_tensor({ x.shape[1], n.attrs.cout, x.shape[3] }, n)
      n.op, n.inputs[1], n.outputs = 'token_linear', x, { y }
      local back = { op = 'transpose_tokens', inputs = { y }, outputs = { old }, attrs = {}, params = {},
                     module = n.module, where = n.where, id = graph:new_node_id() }
      old.producer = back
      table.insert(graph.nodes, i + 1, back)
      moved = moved + 1
    end
    i = i + 1
  end
  for _, n in ipairs(graph.nodes) do
    local p = n.op == 'transpose_tokens' and n.inputs[1].producer
    if p and p.op == 'transpose_tokens' then graph:replace_uses(n.outputs[1], p.inputs[1]) end
  end
  graph:prune()
  if report then report.token_linear = (report.token_linear or 0) + moved end
  return graph
end

return fold
