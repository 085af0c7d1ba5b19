-- fold_repmlp: a RepMLP training-time block (Ding et al., "RepMLP: Re-parameterizing Convolutions
-- into Fully-connected Layers for Image Recognition", 2021; nn/repmlp.lua) becomes its deploy form,
-- as the reference's switch_to_deploy / get_equivalent_fc1_fc3_params computes it (in double here):
--   local perceptron into the partition FC: each repconv<k> with its BN folded (transform I of
--     reparam.lua), zero-padded to the largest kernel K (VI) and summed (II) into one K x K kernel
--     Kc [O, C/g, K, K] with bias bc; a conv on an h x w partition with zero padding p = K // 2 is a
--     linear map of the partition, i.e. an FC (the conv -> FC equivalence of the paper):
--       Wc[o*h*w + y*w + x, ci*h*w + iy*w + ix] = Kc[o, ci, iy - y + p, ix - x + p]  (0 outside K),
--       bc'[o*h*w + y*w + x] = bc[o]                              (ci within o's group of g groups)
--   fc3 and its BatchNorm1d fc3_bn:  W3' = s3 * W3 + Wc,  b3' = t3 + bc'   (s3, t3 the BN affine)
--   the BN after the global perceptron's average pool into fc1 (exact: no padding in between):
--       W1'[n, j] = W1[n, j] * s[c(j)],  b1'[n] = b1[n] + sum_j W1[n, j] * t[c(j)],  c(j) = j / (hp*wp)
-- giving the deploy keys fc1_fc2.fc1.{weight,bias} (re-valued), fc3.{weight,bias}; avg has no
-- parameters left and fc2 is unchanged. The partitioning ops stay (they are the deploy model too).
local ffi = require 'ffi'
local reparam = require 'passes.reparam'
local tensor = require 'tensor'
local batchnorm = require 'ops.batchnorm'

local fold_repmlp = {}

-- avg.bn folded into fc1 (new tensors under fc1's keys).
local function fold_avg_bn(graph, b)
  local bn, fc1 = reparam.member(b, 'avg.bn'), reparam.member(b, 'fc1_fc2.fc1')
  local scale, shift = batchnorm.affine(bn, graph.params)
  local W, bias = graph.params[fc1.params.weight], graph.params[fc1.params.bias]
  local n_out, n_in = W.shape[1], W.shape[2]
  local rep = n_in / bn.attrs.n
  local nw, nb = tensor.new(W.shape), tensor.new({ n_out })
  for n = 0, n_out - 1 do
    local acc = bias.data[n]
    for j = 0, n_in - 1 do
      local c = math.floor(j / rep)
      local v = W.data[n * n_in + j]
      nw.data[n * n_in + j] = v * scale[c]
      acc = acc + v * shift[c]
    end
    nb.data[n] = acc
  end
  graph.params[fc1.params.weight], graph.params[fc1.params.bias] = nw, nb
  graph:replace_uses(bn.outputs[1], bn.inputs[1])
end

-- The local perceptron's branches as one K x K kernel (double) and bias, or nil without branches.
local function local_kernel(graph, b)
  local ks = b.info.ks
  if #ks == 0 then return nil end
  local K = 0
  for _, k in ipairs(ks) do K = math.max(K, k) end
  local acc, acc_b
  for _, k in ipairs(ks) do
    local conv = reparam.member(b, 'repconv' .. k .. '.conv')
    local kk, bb = reparam.fuse_bn(graph, reparam.member(b, 'repconv' .. k .. '.bn'),
      reparam.kernel_of(graph.params[conv.params.weight]))
    kk = reparam.embed(kk, K, K)
    if not acc then acc, acc_b = kk, bb else reparam.accumulate(acc, acc_b, kk, bb) end
  end
  return acc, acc_b, K
end

function fold_repmlp.run(graph, report)
  local blocks = reparam.blocks(graph, 'repmlp')
  for _, b in ipairs(blocks) do
    local info = b.info
    local C, O, h, w, g = info.C, info.O, info.h, info.w, info.groups
    local hw = h * w
    if info.global then fold_avg_bn(graph, b) end
    local fc3, fc3_bn = reparam.member(b, 'fc3'), reparam.member(b, 'fc3_bn')
    local scale, shift = batchnorm.affine(fc3_bn, graph.params)
    local W3 = graph.params[fc3.params.weight]
    local rows, per = O * hw, C * hw / g
    local nw = ffi.new('double[?]', rows * per)
    local nb = ffi.new('double[?]', rows)
    for q = 0, rows - 1 do
      for r = 0, per - 1 do nw[q * per + r] = W3.data[q * per + r] * scale[q] end
      nb[q] = shift[q]
    end
    local Kc, bc, K = local_kernel(graph, b)
    if Kc then
      local p, cg = math.floor(K / 2), C / g
      for o = 0, O - 1 do
        for y = 0, h - 1 do
          for x = 0, w - 1 do
            local q = o * hw + y * w + x
            nb[q] = nb[q] + bc[o]
            for ci = 0, cg - 1 do
              for iy = math.max(0, y - p), math.min(h - 1, y + p) do
                for ix = math.max(0, x - p), math.min(w - 1, x + p) do
                  local idx = q * per + ci * hw + iy * w + ix
                  nw[idx] = nw[idx] + Kc.data[((o * cg + ci) * K + iy - y + p) * K + ix - x + p]
                end
              end
            end
          end
        end
      end
    end
    local prefix = reparam.path(b, 'fc3')
    local wt, bt = tensor.new(W3.shape), tensor.new({ rows })
    for i = 0, rows * per - 1 do wt.data[i] = nw[i] end
    for q = 0, rows - 1 do bt.data[q] = nb[q] end
    graph.params[prefix .. '.weight'], graph.params[prefix .. '.bias'] = wt, bt
    fc3.params = { weight = prefix .. '.weight', bias = prefix .. '.bias' }
    graph:replace_uses(fc3_bn.outputs[1], fc3.outputs[1])
    local d2s
    for _, n in ipairs(b.nodes) do
      if n.op == 'depth_to_space' then d2s = n end
    end
    if not d2s then reparam.fail(b, 'has no depth_to_space') end
    if d2s ~= b.output then graph:replace_uses(b.output.outputs[1], d2s.outputs[1]) end
    for _, n in ipairs(b.nodes) do n.block = nil end
  end
  graph:prune()
  reparam.count(report, 'repmlp_folded', #blocks)
  return graph
end

return fold_repmlp
