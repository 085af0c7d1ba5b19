-- fuse_linear_tokens: Linear layers over many token rows become `linear_tokens` (a cache-blocked
-- GEMM kernel), keeping the activation passes/fuse_epilogue.lua fused into them (GELU in an MLP's
-- fc1, the PfLayer mixer's qkv), and take a following residual add as epilogue, saving a pass over
-- memory:
--   add(linear(x), r)       -> linear_tokens(x) with residual r (attention proj, MLP fc2)
--   add(act(linear(x)), r)  likewise, the residual added after the activation.
-- A Linear over the token axis (ops/token_linear.lua, passes/fold_token_transpose.lua) takes its
-- residual the same way.
-- Only for at least 8 rows and cout a multiple of the kernel's vector width on every target
-- (LANES: halide/linear_tokens.cpp needs whole vectors of output channels; the deploy graph is
-- the same for every target of a build); a fused tensor must have no other consumer and not be a
-- graph output. Exact: the same operations in the same order, per element.
local targets = require 'targets'
local ir = require 'ir'

local fuse = {}

local MIN_ROWS = 8

-- The widest vector, in f32 lanes, of any tier a target family names (targets/<family>.lua).
local LANES = 1
for _, f in pairs(targets.families) do
  for _, tiers in pairs(f.names) do
    for _, tier in ipairs(tiers) do LANES = math.max(LANES, f.lanes(tier)) end
  end
end
fuse.LANES = LANES

function fuse.run(graph, report)
  local converted, fused = 0, 0
  for _, n in ipairs(graph.nodes) do
    local s = n.op == 'linear' and n.inputs[1].shape or {}
    local rows = 1
    for i = 1, #s - 1 do rows = rows * s[i] end
    if n.op == 'linear' and rows >= MIN_ROWS and n.attrs.cout % LANES == 0 then
      n.op = 'linear_tokens'
      converted = converted + 1
    end
  end
  local uses = graph:consumers()
  for _, n in ipairs({ unpack(graph.nodes) }) do
    if n.op == 'linear_tokens' or n.op == 'token_linear' then
      local c = ir.single_use(uses, n.outputs[1])
      if c and c.op == 'add' and not c.attrs.act and not n.inputs[2] then
        local other = c.inputs[1] == n.outputs[1] and c.inputs[2] or c.inputs[1]
        if other ~= n.outputs[1] then
          n.inputs[2] = other
          graph:absorb(n, c)
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
