-- fold_acb: an Asymmetric Convolution Block (Ding et al., "ACNet: Strengthening the Kernel
-- Skeletons for Powerful CNN via Asymmetric Convolution Blocks", ICCV 2019) sums three conv-BN
-- branches on one input: kxk, kx1 and 1xk, with the same stride and groups. The kx1 conv's padding
-- (or crop) is arranged so that its single column sits on the kxk window's centre column, and the
-- 1xk's row on the centre row, so (transforms I, VI, II of reparam.lua):
--   K = s_sq*K_sq + embed_centre(s_ver*K_ver) + embed_centre(s_hor*K_hor),   b = t_sq + t_ver + t_hor
-- is one kxk conv with the square conv's stride, padding and groups: the deploy `fused_conv`.
local reparam = require 'passes.reparam'

local fold_acb = {}

function fold_acb.run(graph, report)
  local blocks = reparam.blocks(graph, 'acb')
  for _, b in ipairs(blocks) do
    local k, bias, square = reparam.conv_bn(graph, b, 'square_conv', 'square_bn')
    local a = square.attrs
    for _, name in ipairs({ 'ver', 'hor' }) do
      local kb, bb = reparam.conv_bn(graph, b, name .. '_conv', name .. '_bn')
      reparam.accumulate(k, bias, reparam.embed(kb, a.kernel[1], a.kernel[2]), bb)
    end
    reparam.replace(graph, b, reparam.conv_attrs(a.cin, a.cout, a.kernel[1], a.kernel[2], a.stride, a.padding, a.groups),
      'fused_conv', k, bias)
  end
  graph:prune()
  reparam.count(report, 'acb_folded', #blocks)
  return graph
end

return fold_acb
