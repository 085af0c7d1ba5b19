-- attention: the core of multi-head self-attention (timm Attention between qkv and proj).
-- Input [1, N, 3D] (q, k, v of head h at columns s*D + h*hd + d, s = 0, 1, 2), output [1, N, D]:
--   y[i, h*hd + d] = sum_j softmax_j(scale * sum_e q[i,h,e] k[j,h,e]) v[j, h, d],  scale = hd^-0.5
-- One kernel per layer; per head and block of queries the scores stay in a stack buffer, K^T and
-- V per head in scratch buffers of the arena.
local ffi = require 'ffi'
local tensor = require 'tensor'

local attention = {}

function attention.shape(node, shapes)
  local x, a = shapes[1], node.attrs
  if #x ~= 3 or x[3] ~= 3 * a.heads * a.head_dim then
    error(string.format('expects qkv tokens [1, N, %d], got %s', 3 * a.heads * a.head_dim, table.concat(x, 'x')), 0)
  end
  return { x[1], x[2], a.heads * a.head_dim }
end

function attention.macs(node)
  local n, a = node.outputs[1].shape[2], node.attrs
  return 2 * n * n * a.heads * a.head_dim
end

function attention.eval(node, inputs)
  local x, a = inputs[1], node.attrs
  local n, hd, heads = x.shape[2], a.head_dim, a.heads
  local D = heads * hd
  local y = tensor.new(node.outputs[1].shape)
  local s = ffi.new('double[?]', n)
  local xd = x.data
  for h = 0, heads - 1 do
    local qo, ko, vo = h * hd, D + h * hd, 2 * D + h * hd
    for i = 0, n - 1 do
      local m = -math.huge
      for j = 0, n - 1 do
        local v = 0
        for e = 0, hd - 1 do v = v + xd[i * 3 * D + qo + e] * xd[j * 3 * D + ko + e] end
        v = v * a.scale
        s[j] = v
        if v > m then m = v end
      end
      local l = 0
      for j = 0, n - 1 do s[j] = math.exp(s[j] - m); l = l + s[j] end
      for e = 0, hd - 1 do
        local acc = 0
        for j = 0, n - 1 do acc = acc + s[j] * xd[j * 3 * D + vo + e] end
        y.data[i * D + h * hd + e] = acc / l
      end
    end
  end
  return y
end

-- The kernel's scratch, in the arena (compiler/halide/attention.cpp): K^T per head in blocks of 16
-- keys (keys_t), and V per head as dense rows (values).
function attention.lower(node, L)
  local x, y, a = node.inputs[1], node.outputs[1], node.attrs
  local n, hd, h = x.shape[2], a.head_dim, a.heads
  local D, nkb = hd * h, math.ceil(n / 16)
  return 'attention', { tokens = n, heads = h, head_dim = hd, scale = string.format('%.9g', a.scale) },
    { L:act(x, { { hd, 1 }, { h, hd }, { 3, D }, { n, 3 * D } }), L:act(y, { { hd, 1 }, { h, hd }, { n, D } }),
      L:scratch(4 * 16 * hd * nkb * h, { { 16, 1 }, { hd, 16 }, { nkb, 16 * hd }, { h, 16 * hd * nkb } }),
      L:scratch(4 * hd * n * h, { { hd, 1 }, { n, hd }, { h, hd * n } }) }
end

return attention
