-- levit_attention: LeViT's multi-head attention core with its learned attention bias (Graham et
-- al. 2021, "LeViT", sec. 4.3 "Attention bias"; timm v0.4.12 levit.py Attention and
-- AttentionSubsample). Per head h, query i (a point of the res_q x res_q grid, res_q = (res - 1) /
-- stride + 1) and key j (a point of the res x res grid):
--   S[h, i, j] = scale sum_e q[i, h, e] k[j, h, e] + B[h, idx(i, j)],   scale = key_dim^-0.5
--   y[i, h vd + d] = sum_j softmax_j(S[h, i, .])[j] v[j, h, d]
-- idx(i, j) numbers the offsets (|stride ri - rj|, |stride ci - cj|) in the order they first appear
-- going through i, then j, row-major: the reference's attention_offsets, which its
-- attention_bias_idxs buffer holds (recomputed here: integer tensors are not read from checkpoints).
-- Inputs: one tensor [1, N, heads (2 kd + vd)] (q | k | v per head), or kv [1, N, heads (kd + vd)]
-- (k | v per head) and q [1, Nq, heads kd]. Runs in the reference interpreter; no kernel yet.
local ffi = require 'ffi'
local tensor = require 'tensor'
local ir = require 'ir'

local levit_attention = {}

local function res_q(a) return math.floor((a.res - 1) / a.stride) + 1 end

function levit_attention.shape(node, shapes)
  local a, x, q = node.attrs, shapes[1], shapes[2]
  local n, nq = a.res * a.res, res_q(a) ^ 2
  local width = a.heads * ((q and 1 or 2) * a.key_dim + a.value_dim)
  if #x ~= 3 or x[2] ~= n or x[3] ~= width then
    error(string.format('expects %s tokens [1, %d, %d] (a %dx%d grid), got %s', q and 'kv' or 'qkv', n, width,
      a.res, a.res, table.concat(x, 'x')), 0)
  end
  if q and (#q ~= 3 or q[2] ~= nq or q[3] ~= a.heads * a.key_dim) then
    error(string.format('expects queries [1, %d, %d], got %s', nq, a.heads * a.key_dim, table.concat(q, 'x')), 0)
  end
  if not q and a.stride ~= 1 then error('a stride needs the queries as a second input', 0) end
  return { x[1], nq, a.heads * a.value_dim }
end

function levit_attention.macs(node)
  local a = node.attrs
  return res_q(a) ^ 2 * a.res * a.res * a.heads * (a.key_dim + a.value_dim)
end

-- idx[i * N + j] (0-based) and the number of offsets.
function levit_attention.bias_index(a)
  local rq, n = res_q(a), a.res * a.res
  local idx, seen, count = {}, {}, 0
  for i = 0, rq * rq - 1 do
    local ri, ci = math.floor(i / rq) * a.stride, (i % rq) * a.stride
    for j = 0, n - 1 do
      local off = math.abs(ri - math.floor(j / a.res)) * a.res + math.abs(ci - j % a.res) -- |dx| < res
      if not seen[off] then seen[off] = count; count = count + 1 end
      idx[i * n + j] = seen[off]
    end
  end
  return idx, count
end

function levit_attention.eval(node, inputs, params)
  local a, x = node.attrs, inputs[1]
  local H, kd, vd, n = a.heads, a.key_dim, a.value_dim, a.res * a.res
  local nq = res_q(a) ^ 2
  local B = params[node.params.biases]
  local idx, count = levit_attention.bias_index(a)
  if B.shape[2] ~= count then
    error(string.format('%s: attention_biases has %d offsets, the grid has %d', ir.node_name(node), B.shape[2], count), 0)
  end
  local sep = inputs[2] ~= nil
  local xw = x.shape[3]
  local per = (sep and 1 or 2) * kd + vd -- columns per head of x
  local qd, qw = sep and inputs[2].data or x.data, sep and inputs[2].shape[3] or xw
  local function qat(i, h, e) return qd[i * qw + (sep and h * kd or h * per) + e] end
  local ko, vo = sep and 0 or kd, sep and kd or 2 * kd
  local y = tensor.new(node.outputs[1].shape)
  local s = ffi.new('double[?]', n)
  local xd = x.data
  for h = 0, H - 1 do
    for i = 0, nq - 1 do
      local m = -math.huge
      for j = 0, n - 1 do
        local v = 0
        for e = 0, kd - 1 do v = v + qat(i, h, e) * xd[j * xw + h * per + ko + e] end
        v = v * a.scale + B.data[h * count + idx[i * n + j]]
        s[j] = v
        if v > m then m = v end
      end
      local l = 0
      for j = 0, n - 1 do s[j] = math.exp(s[j] - m); l = l + s[j] end
      for d = 0, vd - 1 do
        local acc = 0
        for j = 0, n - 1 do acc = acc + s[j] * xd[j * xw + h * per + vo + d] end
        y.data[i * H * vd + h * vd + d] = acc / l
      end
    end
  end
  return y
end

function levit_attention.lower(node)
  error(string.format('%s: LeViT attention (key dim %d != value dim %d, attention bias) has no kernel yet',
    ir.node_name(node), node.attrs.key_dim, node.attrs.value_dim), 0)
end

return levit_attention
