-- affine_into_conv: a per-channel affine (a BatchNorm or layer scale that fold_bn could not fold
-- into the layer before it, which it leaves as a depthwise 1x1 conv with bias) folded into the
-- unpadded conv after it:
--   conv(s * x + t)[o] = sum_{i,k} W[o,i,k] (s[i] x[i,k] + t[i]) + b[o]
--                      = sum_{i,k} (W[o,i,k] s[i]) x[i,k] + (b[o] + sum_{i,k} W[o,i,k] t[i])
-- with i over the input channels of o's group; exact over the reals when every tap reads the map (no
-- zero padding, where the affine would have given t[i] rather than 0). MaxViT's MBConv normalises its
-- input (pre_norm, a BatchNorm whose input the shortcut also reads) before its 1x1 expansion
-- (Tu et al. 2022); a pre-activation block without an activation between BN and conv is the same.
-- Applied when the affine has no activation or residual and its output feeds only that conv, as
-- the conv's input.
local tensor = require 'tensor'
local ir = require 'ir'

local affine_into_conv = {}

local function is_affine(n)
  local a = n.op == 'conv2d' and n.attrs
  return a and a.groups == a.cin and a.cin == a.cout and a.kernel[1] == 1 and a.kernel[2] == 1
    and a.stride[1] == 1 and a.stride[2] == 1 and a.padding[1] == 0 and a.padding[2] == 0
    and a.dilation[1] == 1 and a.dilation[2] == 1 and not a.act and not n.inputs[2]
end

function affine_into_conv.run(graph, report)
  local uses = graph:consumers()
  local folded = 0
  local nodes = {}
  for i, n in ipairs(graph.nodes) do nodes[i] = n end
  for _, aff in ipairs(nodes) do
    local conv = is_affine(aff) and ir.single_use(uses, aff.outputs[1])
    local a = conv and conv.op == 'conv2d' and conv.attrs
    if a and conv.inputs[1] == aff.outputs[1] and conv.inputs[2] ~= aff.outputs[1]
      and a.padding[1] == 0 and a.padding[2] == 0 then
      local s, t = graph.params[aff.params.weight].data, aff.params.bias and graph.params[aff.params.bias].data
      local W = graph.params[conv.params.weight]
      local cout, cin_g = W.shape[1], W.shape[2]
      local taps = W.shape[3] * W.shape[4]
      local per_group = cout / a.groups
      local nw, nb = tensor.new(W.shape), tensor.new({ cout })
      local old_b = conv.params.bias and graph.params[conv.params.bias].data
      for o = 0, cout - 1 do
        local base_c = math.floor(o / per_group) * cin_g
        local acc = old_b and old_b[o] or 0
        for i = 0, cin_g - 1 do
          local c = base_c + i
          for k = 0, taps - 1 do
            local idx = (o * cin_g + i) * taps + k
            nw.data[idx] = W.data[idx] * s[c]
            if t then acc = acc + W.data[idx] * t[c] end
          end
        end
        nb.data[o] = acc
      end
      local bkey = conv.params.bias or (conv.params.weight:gsub('weight$', 'bias'))
      graph.params[conv.params.weight], graph.params[bkey] = nw, nb
      conv.params.bias = bkey
      graph:bypass(aff)
      folded = folded + 1
      uses = graph:consumers()
    end
  end
  graph:prune()
  if report then report.affine_into_conv = (report.affine_into_conv or 0) + folded end
  return graph
end

return affine_into_conv
