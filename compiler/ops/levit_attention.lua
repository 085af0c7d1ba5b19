-- levit_attention: LeViT's multi-head attention core with its learned attention bias (Graham et
-- al. 2021, "LeViT", sec. 4.3 "Attention bias"; timm v0.4.12 levit.py Attention and
-- AttentionSubsample). Per head h, query i (a point of the res_q x res_q grid, res_q = (res - 1) /
-- stride + 1) and key j (a point of the res x res grid):
--   S[h, i, j] = scale sum_e q[i, h, e] k[j, h, e] + B[h, idx(i, j)],   scale = key_dim^-0.5
--   y[i, h vd + d] = sum_j softmax_j(S[h, i, .])[j] v[j, h, d]
-- idx(i, j) numbers the offsets (|stride ri - rj|, |stride ci - cj|) in the order they first appear
-- going through i, then j, row-major: the reference's attention_offsets, which its
-- attention_bias_idxs buffer holds (recomputed here: integer tensors are not read from checkpoints).
-- Inputs as traced: one tensor [1, N, heads (2 kd + vd)] (q | k | v per head), or kv [1, N, heads
-- (kd + vd)] (k | v per head) and q [1, Nq, heads kd]. passes/levit_attention_layout.lua turns it
-- into the attention kernel's form (attrs.kernel_layout): qkv [1, N, 3 heads E] as q | k | v of
-- heads of E = vd (q, k zero-padded), every token a query (the subsampled ones are kept after), the
-- bias of the queries off the subsampled grid 0. The kernel is compiler/halide/attention.cpp's,
-- with the bias as one constant [heads, N, keys padded to 16].
local ffi = require 'ffi'
local tensor = require 'tensor'
local ir = require 'ir'

local levit_attention = {}

local function res_q(a) return math.floor((a.res - 1) / a.stride) + 1 end

function levit_attention.shape(node, shapes)
  local a, x, q = node.attrs, shapes[1], shapes[2]
  local n, nq = a.res * a.res, res_q(a) ^ 2
  if a.kernel_layout then
    if #x ~= 3 or x[2] ~= n or x[3] ~= 3 * a.heads * a.head_dim then
      error(string.format('expects qkv [1, %d, %d], got %s', n, 3 * a.heads * a.head_dim, table.concat(x, 'x')), 0)
    end
    return { x[1], n, a.heads * a.value_dim }
  end
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

-- The reference's count (the subsampled queries, key_dim and value_dim), in either form.
function levit_attention.macs(node)
  local a = node.attrs
  return res_q(a) ^ 2 * a.res * a.res * a.heads * (a.key_dim + a.value_dim)
end

-- idx[i * N + j] (0-based, i a query of the subsampled grid) and the number of offsets.
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

-- bias(h, i, j) for query i of the node's form (kernel layout: i a token of the full grid, 0 off the
-- subsampled one).
local function bias_fn(node, params)
  local a = node.attrs
  local B = params[node.params.biases]
  local idx, count = levit_attention.bias_index(a)
  if B.shape[2] ~= count then
    error(string.format('%s: attention_biases has %d offsets, the grid has %d', ir.node_name(node), B.shape[2], count), 0)
  end
  local n, rq, st = a.res * a.res, res_q(a), a.stride
  return function(h, i, j)
    if a.kernel_layout and st > 1 then
      local r, c = math.floor(i / a.res), i % a.res
      if r % st ~= 0 or c % st ~= 0 then return 0 end
      i = (r / st) * rq + c / st
    end
    return B.data[h * count + idx[i * n + j]]
  end
end

-- Column accessors q(i, h, e), k(j, h, e), v(j, h, d) of the node's form, and the query count.
local function columns(node, inputs)
  local a, x = node.attrs, inputs[1]
  local H, kd, vd, xw, xd = a.heads, a.key_dim, a.value_dim, x.shape[3], x.data
  if a.kernel_layout then
    local E = a.head_dim
    return function(i, h, e) return xd[i * xw + h * E + e] end,
      function(j, h, e) return xd[j * xw + (H + h) * E + e] end,
      function(j, h, d) return xd[j * xw + (2 * H + h) * E + d] end, x.shape[2]
  end
  if inputs[2] then
    local qd, qw, per = inputs[2].data, inputs[2].shape[3], kd + vd
    return function(i, h, e) return qd[i * qw + h * kd + e] end,
      function(j, h, e) return xd[j * xw + h * per + e] end,
      function(j, h, d) return xd[j * xw + h * per + kd + d] end, inputs[2].shape[2]
  end
  local per = 2 * kd + vd
  return function(i, h, e) return xd[i * xw + h * per + e] end,
    function(j, h, e) return xd[j * xw + h * per + kd + e] end,
    function(j, h, d) return xd[j * xw + h * per + 2 * kd + d] end, x.shape[2]
end

function levit_attention.eval(node, inputs, params)
  local a = node.attrs
  local H, kd, vd, n = a.heads, a.key_dim, a.value_dim, a.res * a.res
  local bias = bias_fn(node, params)
  local q, k, v, nq = columns(node, inputs)
  local y = tensor.new(node.outputs[1].shape)
  local s = ffi.new('double[?]', n)
  for h = 0, H - 1 do
    for i = 0, nq - 1 do
      local m = -math.huge
      for j = 0, n - 1 do
        local acc = 0
        for e = 0, kd - 1 do acc = acc + q(i, h, e) * k(j, h, e) end
        acc = acc * a.scale + bias(h, i, j)
        s[j] = acc
        if acc > m then m = acc end
      end
      local l = 0
      for j = 0, n - 1 do s[j] = math.exp(s[j] - m); l = l + s[j] end
      for d = 0, vd - 1 do
        local acc = 0
        for j = 0, n - 1 do acc = acc + s[j] * v(j, h, d) end
        y.data[(i * H + h) * vd + d] = acc / l
      end
    end
  end
  return y
end

-- The attention kernel with a per-head bias [heads, N, keys] (ops/attention.lua's arguments, no windows).
function levit_attention.lower(node, L)
  local a, x, y = node.attrs, node.inputs[1], node.outputs[1]
  if not a.kernel_layout then
    error(string.format('%s: LeViT attention with key dim %d > value dim %d, or projections that are not plain '
      .. 'Linears, has no kernel', ir.node_name(node), a.key_dim, a.value_dim), 0)
  end
  local n, H, E = a.res * a.res, a.heads, a.head_dim
  local D, nkb = H * E, math.ceil(n / 16)
  local bj = nkb * 16
  local bias = bias_fn(node, L.params)
  local t = tensor.new({ H, n, bj })
  for h = 0, H - 1 do
    for i = 0, n - 1 do
      local row = (h * n + i) * bj
      for j = 0, bj - 1 do t.data[row + j] = bias(h, i, math.min(j, n - 1)) end
    end
  end
  return 'attention', { tokens = n, heads = H, head_dim = E, scale = string.format('%.9g', a.scale), bias = 1 },
    { L:act(x, { { E, 1 }, { H, E }, { 3, D }, { n, 3 * D } }),
      L:weight(node.params.biases .. '@gathered', t, { { bj, 1 }, { n, bj }, { H, n * bj } }),
      L:act(y, { { E, 1 }, { H, E }, { n, D } }),
      L:scratch(4 * 16 * E * nkb * H, { { 16, 1 }, { E, 16 }, { nkb, 16 * E }, { H, 16 * E * nkb } }),
      L:scratch(4 * E * n * H, { { E, 1 }, { n, E }, { H, E * n }, { 1, E * n * H } }) }
end

return levit_attention
