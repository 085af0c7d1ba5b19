-- fold_dbb: a Diverse Branch Block (Ding et al., "Diverse Branch Block: Building a Convolution as an
-- Inception-like Unit", CVPR 2021; the transforms I-VI of reparam.lua) becomes one kxk conv with
-- the origin branch's stride, padding k // 2 and groups, the deploy `dbb_reparam`:
--   origin    kxk-BN                    -> I
--   1x1       1x1-BN                    -> I, then VI (zero-pad to kxk about the centre)
--   1x1-kxk   (W1 + identity)-BNAndPad-kxk-BN: both BNs by I, then III. BNAndPad pads the 1x1
--             output with b1 (the value its BN gives a zero input), which is exactly the value the
--             merged conv's zero-padded input produces there, so III is exact at the borders too.
--   avg       1x1-BNAndPad-avgpool-avgbn: the pool as a conv (V), avgbn by I, then III;
--             depthwise: avgpool(padding k // 2, zeros counted)-avgbn, V then I.
-- and the four kernels and biases summed (II).
local reparam = require 'passes.reparam'

local fold_dbb = {}

local function weight(graph, node)
  return reparam.kernel_of(graph.params[node.params.weight])
end

local function conv_bn(graph, b, conv_name, bn_name, k)
  local conv = reparam.member(b, conv_name)
  return reparam.fuse_bn(graph, reparam.member(b, bn_name), k or weight(graph, conv))
end

function fold_dbb.run(graph, report)
  local blocks = reparam.blocks(graph, 'dbb')
  for _, b in ipairs(blocks) do
    local origin = reparam.member(b, 'dbb_origin.conv')
    local a = origin.attrs
    local kh, kw, g = a.kernel[1], a.kernel[2], a.groups
    local k, bias = conv_bn(graph, b, 'dbb_origin.conv', 'dbb_origin.bn')
    if b.info.has_1x1 then
      local k1, b1 = conv_bn(graph, b, 'dbb_1x1.conv', 'dbb_1x1.bn')
      reparam.accumulate(k, bias, reparam.embed(k1, kh, kw), b1)
    end
    -- 1x1 -> kxk
    local first, b_first
    if b.info.identity_1x1 then
      local idconv = reparam.member(b, 'dbb_1x1_kxk.idconv1')
      first = weight(graph, idconv)
      reparam.accumulate(first, reparam.zero_bias(a.cin), reparam.identity(a.cin, g, 1, 1), reparam.zero_bias(a.cin))
      first, b_first = reparam.fuse_bn(graph, reparam.member(b, 'dbb_1x1_kxk.bn1.bn'), first)
    else
      first, b_first = conv_bn(graph, b, 'dbb_1x1_kxk.conv1', 'dbb_1x1_kxk.bn1.bn')
    end
    local second, b_second = conv_bn(graph, b, 'dbb_1x1_kxk.conv2', 'dbb_1x1_kxk.bn2')
    reparam.accumulate(k, bias, reparam.sequential(first, b_first, second, b_second, g))
    -- average pooling
    local avg, b_avg = reparam.fuse_bn(graph, reparam.member(b, 'dbb_avg.avgbn'), reparam.average(a.cout, g, kh, kw))
    if b.info.has_1x1 then
      local k1, b1 = conv_bn(graph, b, 'dbb_avg.conv', 'dbb_avg.bn.bn')
      avg, b_avg = reparam.sequential(k1, b1, avg, b_avg, g)
    end
    reparam.accumulate(k, bias, avg, b_avg)
    reparam.replace(graph, b, reparam.conv_attrs(a.cin, a.cout, kh, kw, a.stride, a.padding, g), 'dbb_reparam', k, bias)
  end
  graph:prune()
  reparam.count(report, 'dbb_folded', #blocks)
  return graph
end

return fold_dbb
