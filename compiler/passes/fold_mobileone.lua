-- fold_mobileone: a MobileOne block (Vasu et al., "MobileOne: An Improved One millisecond Mobile
-- Backbone", CVPR 2023) sums, on one input and before its ReLU, n kxk conv-BN branches, a 1x1
-- conv-BN scale branch (when k > 1) and a BN identity (when cin == cout and stride 1), all with the
-- same stride and groups (depthwise 3x3 blocks: groups = cin; pointwise 1x1 blocks: groups 1):
--   y = sum_i BN_i(conv_kxk_i(x)) [+ BN_s(conv_1x1(x))] [+ BN_id(x)]
-- With padding k // 2 the 1x1 taps sit on the kxk window's centre, so (transforms I, VI, II of
-- reparam.lua; the identity as a kernel with 1 at the centre tap of [c, c mod (C/groups)]):
--   K = sum_i s_i*K_i + pad(s_s*K_s) + s_id*I,   b = sum_i t_i + t_s + t_id
-- is one kxk conv with bias, the deploy `reparam_conv`, exactly as the reference's
-- MobileOneBlock._get_kernel_bias. The block's ReLU stays outside and is fused later.
local reparam = require 'passes.reparam'

local fold_mobileone = {}

local function branch(graph, b, name)
  return reparam.conv_bn(graph, b, name .. '.conv', name .. '.bn')
end

function fold_mobileone.run(graph, report)
  local blocks = reparam.blocks(graph, 'mobileone')
  for _, b in ipairs(blocks) do
    local k, bias, first = branch(graph, b, 'rbr_conv.0')
    local a = first.attrs
    local kh, kw = a.kernel[1], a.kernel[2]
    for i = 1, b.info.branches - 1 do
      reparam.accumulate(k, bias, branch(graph, b, 'rbr_conv.' .. i))
    end
    if b.info.scale then
      local ks, bs = branch(graph, b, 'rbr_scale')
      reparam.accumulate(k, bias, reparam.embed(ks, kh, kw), bs)
    end
    if b.info.identity then
      reparam.accumulate(k, bias, reparam.fuse_bn(graph, reparam.member(b, 'rbr_skip'),
        reparam.identity(a.cin, a.groups, kh, kw)))
    end
    reparam.replace(graph, b, reparam.conv_attrs(a.cin, a.cout, kh, kw, a.stride, a.padding, a.groups), 'reparam_conv', k, bias)
  end
  graph:prune()
  reparam.count(report, 'mobileone_folded', #blocks)
  return graph
end

return fold_mobileone
