-- fold_dirac: a DiracNet v2 training-time block (Zagoruyko & Komodakis, "DiracNets: Training Very
-- Deep Neural Networks Without Skip-Connections", arXiv:1706.00388, 2017) convolves with the
-- parameter expression
--   W[o] = beta[o] * V[o] / max(||V[o]||_2, 1e-12) + alpha[o] * E[o]
-- (V the raw weight, E the stored dirac delta; ops/dirac_conv2d.lua). W depends on parameters
-- only, so it is computed once, in double, and the block's dirac_conv2d becomes a plain conv2d with
-- weight W stored under the folded module's key (info.deploy .. '.weight', e.g.
-- features.group0.block0.conv.weight); the stem conv (root key `conv`) is re-keyed to
-- features.conv.weight. The BN after each is left for passes/fold_bn.lua (transform I of
-- reparam.lua), which adds the bias under the same prefix, giving exactly the keys of the reference
-- DiracNet module (models/diracnet.lua). The block's ReLU stays and is fused later.
local reparam = require 'passes.reparam'
local dirac_conv2d = require 'ops.dirac_conv2d'

local fold_dirac = {}

function fold_dirac.run(graph, report)
  local blocks = reparam.blocks(graph, 'dirac')
  local folded = 0
  for _, b in ipairs(blocks) do
    local conv = reparam.member(b, 'conv')
    local key = b.info.deploy .. '.weight'
    if conv.op == 'dirac_conv2d' then
      graph.params[key] = reparam.weight_tensor(dirac_conv2d.weight(conv, graph.params))
      conv.op = 'conv2d'
      folded = folded + 1
    elseif conv.op == 'conv2d' and not conv.params.bias then
      graph.params[key] = graph.params[conv.params.weight]
    else
      reparam.fail(b, 'expects a dirac_conv2d or a conv2d without bias, found ' .. conv.op)
    end
    conv.params = { weight = key }
    conv.module = b.info.deploy
    for _, n in ipairs(b.nodes) do n.block = nil end
  end
  graph:prune()
  reparam.count(report, 'dirac_folded', folded)
  return graph
end

return fold_dirac
