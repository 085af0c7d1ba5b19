-- pool_before_conv: an average pool after a 1x1 convolution runs before it instead:
--   avg_pool(conv1x1(z)) = conv1x1(avg_pool(z))
-- since each pooled value is a mean of the conv's outputs over its window, sum_p w_p (W z_p + b) =
-- W (sum_p w_p z_p) + b with weights w_p summing to 1 (exact over the reals). The conv then runs on
-- the pooled map: a 2x2 stride-2 pool leaves it a quarter of the MACs (DenseNet's transitions:
-- BN-ReLU, 1x1 conv, 2x2 average pool; torchvision 0.14 densenet121: 308 -> 77 MMACs). Applied when
-- the conv is 1x1 with stride 1 and no padding, no residual and no activation, its output feeds only
-- the pool, and the pool has no padding (so every window's weights are its own taps' and sum to 1).
local ir = require 'ir'

local pool_before_conv = {}

function pool_before_conv.run(graph, report)
  local uses = graph:consumers()
  local moved = 0
  for _, pool in ipairs(graph.nodes) do
    local pa = pool.attrs
    local conv = pool.op == 'pool2d' and pa.mode == 'avg' and not pa.act and pa.padding[1] == 0 and pa.padding[2] == 0
      and pool.inputs[1].producer
    local a = conv and conv.op == 'conv2d' and conv.attrs
    if a and a.kernel[1] == 1 and a.kernel[2] == 1 and a.stride[1] == 1 and a.stride[2] == 1 and a.padding[1] == 0
      and a.padding[2] == 0 and not a.act and not conv.inputs[2] and ir.single_use(uses, conv.outputs[1]) == pool then
      -- pool(conv(z)) -> conv(pool(z)): the pool's output tensor becomes the conv's and vice versa
      local zs, os = conv.inputs[1].shape, pool.outputs[1].shape
      graph:swap(conv, pool, { zs[1], zs[2], os[3], os[4] })
      moved = moved + 1
      uses = graph:consumers()
    end
  end
  if report then report.pool_before_conv = (report.pool_before_conv or 0) + moved end
  return graph
end

return pool_before_conv
