-- fold_repvgg: a RepVGG block (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again",
-- CVPR 2021) is three branches on one input, summed before the ReLU:
--   y = BN_d(conv3x3(x)) + BN_1(conv1x1(x)) [+ BN_id(x)   when cin == cout and stride 1]
-- with the 3x3 padded by 1 and the 1x1 unpadded, both with the same stride and groups. Each branch
-- is a conv with the BN folded in (the identity as a kernel with 1 at the centre of [c, c mod Cg]),
-- the 1x1 zero-padded to 3x3 (same output pixels, since its taps sit on the 3x3 centre), and the
-- branches summed:
--   K = s_d*K_d + pad(s_1*K_1) + s_id*I,   b = t_d + t_1 + t_id
-- giving the deploy layer `rbr_reparam` (conv3x3 with bias), exactly as the reference's
-- get_equivalent_kernel_bias. The block's ReLU stays outside and is fused later.
local reparam = require 'passes.reparam'

local fold_repvgg = {}

local function branch(graph, b, name)
  return reparam.conv_bn(graph, b, name .. '.conv', name .. '.bn')
end

function fold_repvgg.run(graph, report)
  local blocks = reparam.blocks(graph, 'repvgg')
  for _, b in ipairs(blocks) do
    local k, bias, dense = branch(graph, b, 'rbr_dense')
    local a = dense.attrs
    local k1, b1 = branch(graph, b, 'rbr_1x1')
    reparam.accumulate(k, bias, reparam.embed(k1, a.kernel[1], a.kernel[2]), b1)
    if b.info.identity then
      local kid, bid = reparam.fuse_bn(graph, reparam.member(b, 'rbr_identity'),
        reparam.identity(a.cin, a.groups, a.kernel[1], a.kernel[2]))
      reparam.accumulate(k, bias, kid, bid)
    end
    reparam.replace(graph, b, reparam.conv_attrs(a.cin, a.cout, a.kernel[1], a.kernel[2], a.stride, a.padding, a.groups),
      'rbr_reparam', k, bias)
  end
  graph:prune()
  reparam.count(report, 'repvgg_folded', #blocks)
  return graph
end

return fold_repvgg
