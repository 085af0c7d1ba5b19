-- fold_adaptive_pool: an adaptive average pool that enlarges its map (VGG's AdaptiveAvgPool2d((7, 7))
-- on the 2x2 map of a 64x64 input), then flatten, then Linear, is one Linear on the flattened input:
--   y = W flatten(P x) = (W P) flatten(x),   (W P)[o, c*H*W + h*W + w] = sum over the output cells
--   (i, j) whose bins hold (h, w) of W[o, c*OH*OW + i*OW + j] / |bin_i| |bin_j|
-- (P: ops/adaptive_avgpool.lua's bins; exact over the reals). Applied when OH*OW > H*W, where it makes
-- the Linear smaller; equal sizes are a view and a shrinking pool runs as its own kernel. The pool and
-- the flatten must have no other use.
local tensor = require 'tensor'
local adaptive_avgpool = require 'ops.adaptive_avgpool'

local fold_adaptive_pool = {}

local function single_use(uses, t)
  local u = uses[t.id]
  return u and #u == 1 and u[1] ~= false and u[1]
end

function fold_adaptive_pool.run(graph, report)
  local uses = graph:consumers()
  local folded = 0
  for _, pool in ipairs(graph.nodes) do
    local x, p = pool.inputs[1], pool.outputs[1]
    local flat = pool.op == 'adaptive_avgpool' and single_use(uses, p)
    local fc = flat and flat.op == 'flatten' and single_use(uses, flat.outputs[1])
    if fc and fc.op == 'linear' and p.shape[3] * p.shape[4] > x.shape[3] * x.shape[4] then
      local c, h, w, oh, ow = x.shape[2], x.shape[3], x.shape[4], p.shape[3], p.shape[4]
      local W = graph.params[fc.params.weight]
      local cout, cin = W.shape[1], c * h * w
      local nw = tensor.new({ cout, cin })
      for i = 0, oh - 1 do
        local y0, y1 = adaptive_avgpool.bin(i, oh, h)
        for j = 0, ow - 1 do
          local x0, x1 = adaptive_avgpool.bin(j, ow, w)
          local share = 1 / ((y1 - y0) * (x1 - x0))
          for o = 0, cout - 1 do
            for ch = 0, c - 1 do
              local v = W.data[o * c * oh * ow + (ch * oh + i) * ow + j] * share
              for iy = y0, y1 - 1 do
                local row = o * cin + (ch * h + iy) * w
                for ix = x0, x1 - 1 do nw.data[row + ix] = nw.data[row + ix] + v end
              end
            end
          end
        end
      end
      graph.params[fc.params.weight] = nw
      fc.attrs.cin = cin
      flat.inputs[1] = x
      flat.outputs[1].shape = { x.shape[1], cin }
      folded = folded + 1
      uses = graph:consumers()
    end
  end
  graph:prune()
  if report then report.adaptive_pool_folded = (report.adaptive_pool_folded or 0) + folded end
  return graph
end

return fold_adaptive_pool
