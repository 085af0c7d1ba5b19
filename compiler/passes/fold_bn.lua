-- fold_bn: BatchNorm (eval) after a conv or linear whose output feeds only that BN is folded into it:
--   W'[o,...] = W[o,...] * s[o],  b'[o] = b[o] * s[o] + t[o],  s = gamma/sqrt(var+eps), t = beta - mean*s
-- (exact over the reals; Ioffe & Szegedy 2015; standard inference folding); a BatchNorm that only a
-- Linear reads (LeViT's BN_Linear head) is folded into that Linear's input side:
--   W'[o,i] = W[o,i] * s[i],  b'[o] = b[o] + sum_i W[o,i] t[i];  so is a layer scale
-- (ops/channel_scale.lua: s = its parameter, t = 0). A BN or scale that cannot be folded on a
-- feature map becomes a depthwise 1x1 conv (its per-channel affine), which the conv kernel runs with
-- any fused epilogue. A BN marked `keep` (one the deploy form itself has: see
-- verbs/fold.lua) is left as it is.
local tensor = require 'tensor'
local batchnorm = require 'ops.batchnorm'
local channel_scale = require 'ops.channel_scale'
local ir = require 'ir'

-- The per-channel affines this pass folds, by op.
local AFFINE = { batchnorm = batchnorm.affine, channel_scale = channel_scale.affine }

local fold_bn = {}

local function bias_key(node)
  if node.params.bias then return node.params.bias end
  return (node.params.weight:gsub('weight$', 'bias'))
end

-- A BatchNorm whose one consumer is a Linear reading its channels as features (a [1, C] vector, or
-- tokens with the BN over their last dim): foldable into that Linear's input side.
local function before_linear(bn, uses)
  local l = ir.single_use(uses, bn.outputs[1])
  local x = bn.inputs[1]
  return bn.op == 'batchnorm' and l and l.op == 'linear' and l.inputs[1] == bn.outputs[1] and not l.inputs[2]
    and (#x.shape == 2 or bn.attrs.channels_last) or false
end

function fold_bn.run(graph, report)
  local uses = graph:consumers()
  local folded, kept = 0, 0
  for _, bn in ipairs(graph.nodes) do
    if AFFINE[bn.op] and not bn.keep then
      local x = bn.inputs[1]
      local p = x.producer
      local scale, shift = AFFINE[bn.op](bn, graph.params)
      if p and (p.op == 'conv2d' or p.op == 'linear') and ir.single_use(uses, x) and not p.attrs.act
        and not p.inputs[2] then
        local W = graph.params[p.params.weight]
        local per = W.numel / W.shape[1]
        local nw = tensor.new(W.shape)
        for i = 0, W.numel - 1 do nw.data[i] = W.data[i] * scale[math.floor(i / per)] end
        local old_b = p.params.bias and graph.params[p.params.bias].data
        local nb = tensor.new({ W.shape[1] })
        for o = 0, W.shape[1] - 1 do nb.data[o] = (old_b and old_b[o] or 0) * scale[o] + shift[o] end
        local bkey = bias_key(p)
        graph.params[p.params.weight] = nw
        graph.params[bkey] = nb
        p.params.bias = bkey
        graph:replace_uses(bn.outputs[1], x) -- the BN is now unreachable; prune drops it
        folded = folded + 1
      elseif before_linear(bn, uses) then
        -- BN then Linear (LeViT's BN_Linear heads): W'[o,i] = W[o,i] s[i], b'[o] = b[o] + sum_i W[o,i] t[i]
        local l = ir.single_use(uses, bn.outputs[1])
        local W = graph.params[l.params.weight]
        local cout, cin = W.shape[1], W.shape[2]
        local old_b = l.params.bias and graph.params[l.params.bias].data
        local nw, nb = tensor.new(W.shape), tensor.new({ cout })
        for o = 0, cout - 1 do
          local acc = old_b and old_b[o] or 0
          for i = 0, cin - 1 do
            local w = W.data[o * cin + i]
            nw.data[o * cin + i] = w * scale[i]
            acc = acc + w * shift[i]
          end
          nb.data[o] = acc
        end
        local bkey = bias_key(l)
        graph.params[l.params.weight] = nw
        graph.params[bkey] = nb
        l.params.bias = bkey
        graph:replace_uses(bn.outputs[1], x)
        folded = folded + 1
      elseif #x.shape == 4 then
        -- The per-channel affine as a depthwise 1x1 conv with bias.
        local n = bn.attrs.n
        local w, b = tensor.new({ n, 1, 1, 1 }), tensor.new({ n })
        for c = 0, n - 1 do w.data[c], b.data[c] = scale[c], shift[c] end
        local prefix = bn.op == 'batchnorm' and bn.module or ((bn.module or 'bn') .. '.' .. bn.op .. bn.id)
        graph.params[prefix .. '.weight'], graph.params[prefix .. '.bias'] = w, b
        bn.op = 'conv2d'
        bn.attrs = { cin = n, cout = n, groups = n, kernel = { 1, 1 }, stride = { 1, 1 },
                     padding = { 0, 0 }, dilation = { 1, 1 } }
        bn.params = { weight = prefix .. '.weight', bias = prefix .. '.bias' }
        kept = kept + 1
      else
        error(string.format('%s: a %s on shape %s that follows no linear cannot be folded (unsupported)',
          bn.where or bn.module, bn.op == 'batchnorm' and 'BatchNorm1d' or 'layer scale', table.concat(x.shape, 'x')), 0)
      end
    end
  end
  graph:prune()
  if report then
    report.bn_folded = (report.bn_folded or 0) + folded
    report.bn_as_affine = (report.bn_as_affine or 0) + kept
  end
  return graph
end

return fold_bn
