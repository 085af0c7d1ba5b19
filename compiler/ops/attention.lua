-- attention: the core of multi-head self-attention (timm Attention between qkv and proj), over the
-- whole sequence or within windows of a token map (Liu et al. 2021, "Swin Transformer", sec. 3.2;
-- Tu et al. 2022, "MaxViT", sec. 3.1). Input [1, M, 3D] (q, k, v of head h at columns
-- s*D + h*hd + d, s = 0, 1, 2), output [1, M, D]; for each window w of N tokens n(t, w):
--   y[n(i,w), h*hd + d] = sum_j softmax_j(scale q[n(i,w),h,.] . k[n(j,w),h,.] + B[h,i,j] + A[w,i,j])
--                         v[n(j,w), h, d],  scale = hd^-0.5
-- attrs.window = { map = {H, W}, size = {wh, ww}, dilation = {dh, dw}, shift = {sh, sw} } (absent:
-- one window, n(t) = t): window w = (py, px) of (H/wh) x (W/ww), its token t = (a, b) at the map
-- row y = ((py / dh) wh dh + a dh + py % dh + sh) mod H (columns alike): dh = 1 is Swin's window
-- partition, dh = H / wh MaxViT's grid; the shift is torch.roll(x, (-sh, -sw)) before the partition
-- and its inverse after. B: the relative position bias, table[index(i, j), h] (params.bias_table,
-- [(2wh - 1)(2ww - 1), heads]) with Swin's index (a_i - a_j + wh - 1)(2ww - 1) + b_i - b_j + ww - 1,
-- recomputed as the reference's __init__ computes its relative_position_index buffer (the readers
-- keep no int64 data; a checkpoint's buffer is checked for its shape). A: the shifted windows' mask,
-- -100 where i and j come from different regions of the rolled map (rows [0, H - wh),
-- [H - wh, H - sh), [H - sh, H); columns alike; one region in a dimension without a shift), as
-- torchvision 0.14 and timm v0.4.12 build it; timm's attn_mask buffer (params.attn_mask) is checked
-- against it. The kernel (compiler/halide/attention.cpp) reads B gathered here into a constant
-- [heads, N, 16k] (keys padded to a multiple of 16, repeating the last one) and A as one constant
-- [4, N, 16k] for the classes of windows (interior, last row, last column, corner), shared by the
-- layers of one shape: a vector load per 16 scores each, where gathering table entries by index in
-- the kernel would be a scalar load per score; Swin-T's biases and masks take 1.9 MB this way.
local ffi = require 'ffi'
local tensor = require 'tensor'

local attention = {}

local function window_of(a)
  local w = a.window
  if not w then return nil end
  local d, s = w.dilation or { 1, 1 }, w.shift or { 0, 0 }
  return { H = w.map[1], W = w.map[2], wh = w.size[1], ww = w.size[2], dh = d[1], dw = d[2], sh = s[1], sw = s[2],
           nwy = w.map[1] / w.size[1], nwx = w.map[2] / w.size[2] }
end

-- Tokens per window, windows, and token n(t, w) (0-based) of the map.
function attention.windows(a, m)
  local g = window_of(a)
  if not g then return m, 1, function(t) return t end end
  local function coord(p, q, size, dil, shift, extent)
    return ((math.floor(p / dil) * size * dil + q * dil + p % dil) + shift) % extent
  end
  return g.wh * g.ww, g.nwy * g.nwx, function(t, w)
    local py, px = math.floor(w / g.nwx), w % g.nwx
    local a, b = math.floor(t / g.ww), t % g.ww
    return coord(py, a, g.wh, g.dh, g.sh, g.H) * g.W + coord(px, b, g.ww, g.dw, g.sw, g.W)
  end
end

function attention.shape(node, shapes)
  local x, a = shapes[1], node.attrs
  if #x ~= 3 or x[3] ~= 3 * a.heads * a.head_dim then
    error(string.format('expects qkv tokens [1, N, %d], got %s', 3 * a.heads * a.head_dim, table.concat(x, 'x')), 0)
  end
  local g = window_of(a)
  if g then
    if x[2] ~= g.H * g.W then
      error(string.format('a %dx%d token map has %d tokens, got %d', g.H, g.W, g.H * g.W, x[2]), 0)
    end
    if g.H % (g.wh * g.dh) ~= 0 or g.W % (g.ww * g.dw) ~= 0 then
      error(string.format('%dx%d windows (tokens %dx%d apart) do not tile the %dx%d map', g.wh, g.ww, g.dh, g.dw,
        g.H, g.W), 0)
    end
    if g.sh >= g.H or g.sw >= g.W or ((g.sh > 0 or g.sw > 0) and (g.dh > 1 or g.dw > 1)) then
      error(string.format('shift %dx%d: below the map and with adjacent window tokens only', g.sh, g.sw), 0)
    end
  end
  return { x[1], x[2], a.heads * a.head_dim }
end

function attention.macs(node)
  local a = node.attrs
  local n, nw = attention.windows(a, node.outputs[1].shape[2])
  return 2 * n * n * nw * a.heads * a.head_dim
end

-- The shifted windows' mask of window w as the reference builds it: mask(i, j) = 0 or -100.
local function region_mask(g, w)
  local function region(v, extent, size, shift)
    if shift == 0 then return 0 end
    return v < extent - size and 0 or (v < extent - shift and 1 or 2)
  end
  local py, px = math.floor(w / g.nwx), w % g.nwx
  local n, r = g.wh * g.ww, {}
  for t = 0, n - 1 do
    local ys, xs = py * g.wh + math.floor(t / g.ww), px * g.ww + t % g.ww
    r[t] = region(ys, g.H, g.wh, g.sh) * 3 + region(xs, g.W, g.ww, g.sw)
  end
  return function(i, j) return r[i] == r[j] and 0 or -100 end
end

-- timm's attn_mask buffer [windows, N, N], when the checkpoint holds it, must be the mask it is
-- recomputed as.
local function check_mask(node, g, params)
  local key = node.params.attn_mask
  if not key then return end
  local t, n = params[key], g.wh * g.ww
  if not t then return end -- an optional buffer the checkpoint does not hold
  for w = 0, g.nwy * g.nwx - 1 do
    local mask = region_mask(g, w)
    for i = 0, n - 1 do
      for j = 0, n - 1 do
        local v = t.data[(w * n + i) * n + j]
        if v ~= mask(i, j) then
          error(string.format('%s: [%d, %d, %d] is %.9g, not the shifted-window mask (%d)', key, w, i, j, v, mask(i, j)), 0)
        end
      end
    end
  end
end

-- The additive score terms: bias(h, i, j) (the relative position bias), or nil; mask[c](i, j) for the
-- classes of windows c = 0 (interior), 1 (last row), 2 (last column), 3 (the corner) and mask.of(w),
-- or nil when the windows are not shifted.
local function score_terms(node, params)
  local g = window_of(node.attrs)
  if not g then return nil, nil end
  local key, heads = node.params.bias_table, node.attrs.heads
  local bias, mask
  if key then
    local tab = params[key].data
    bias = function(h, i, j)
      local ai, bi, aj, bj = math.floor(i / g.ww), i % g.ww, math.floor(j / g.ww), j % g.ww
      return tab[((ai - aj + g.wh - 1) * (2 * g.ww - 1) + bi - bj + g.ww - 1) * heads + h]
    end
  end
  if g.sh > 0 or g.sw > 0 then
    check_mask(node, g, params)
    mask = {}
    for c = 0, 3 do
      local py = c % 2 == 1 and g.nwy - 1 or 0
      local px = c >= 2 and g.nwx - 1 or 0
      mask[c] = region_mask(g, py * g.nwx + px)
    end
    mask.of = function(w)
      return (math.floor(w / g.nwx) == g.nwy - 1 and 1 or 0) + (w % g.nwx == g.nwx - 1 and 2 or 0)
    end
  end
  return bias, mask
end

function attention.eval(node, inputs, params)
  local x, a = inputs[1], node.attrs
  local hd, heads = a.head_dim, a.heads
  local n, nw, token = attention.windows(a, x.shape[2])
  local bias, masks = score_terms(node, params)
  local D = heads * hd
  local y = tensor.new(node.outputs[1].shape)
  local s = ffi.new('double[?]', n)
  local xd = x.data
  for w = 0, nw - 1 do
    local mask = masks and masks[masks.of(w)]
    for h = 0, heads - 1 do
      local qo, ko, vo = h * hd, D + h * hd, 2 * D + h * hd
      for i = 0, n - 1 do
        local qi = token(i, w)
        local m = -math.huge
        for j = 0, n - 1 do
          local kj = token(j, w)
          local v = 0
          for e = 0, hd - 1 do v = v + xd[qi * 3 * D + qo + e] * xd[kj * 3 * D + ko + e] end
          v = v * a.scale
          if bias then v = v + bias(h, i, j) end
          if mask then v = v + mask(i, j) end
          s[j] = v
          if v > m then m = v end
        end
        local l = 0
        for j = 0, n - 1 do s[j] = math.exp(s[j] - m); l = l + s[j] end
        for e = 0, hd - 1 do
          local acc = 0
          for j = 0, n - 1 do acc = acc + s[j] * xd[token(j, w) * 3 * D + vo + e] end
          y.data[qi * D + h * hd + e] = acc / l
        end
      end
    end
  end
  return y
end

-- The kernel's scratch, in the arena (compiler/halide/attention.cpp): K^T per head and window in
-- blocks of 16 keys (keys_t; heads and windows one dimension), and V per head and window as dense
-- rows (values); the bias classes
-- as one constant [classes, heads, N, keys padded to 16].
function attention.lower(node, L)
  local x, y, a = node.inputs[1], node.outputs[1], node.attrs
  local m, hd, h = x.shape[2], a.head_dim, a.heads
  local n, nw = attention.windows(a, m)
  local D, nkb = hd * h, math.ceil(n / 16)
  local gp = { tokens = n, heads = h, head_dim = hd, scale = string.format('%.9g', a.scale) }
  local g = window_of(a)
  if g then
    gp.map_h, gp.map_w, gp.win_h, gp.win_w = g.H, g.W, g.wh, g.ww
    if g.dh > 1 or g.dw > 1 then gp.dil_h, gp.dil_w = g.dh, g.dw end
    if g.sh > 0 or g.sw > 0 then gp.shift_h, gp.shift_w = g.sh, g.sw end
  end
  local args = { L:act(x, { { hd, 1 }, { h, hd }, { 3, D }, { m, 3 * D } }) }
  local bias, mask = score_terms(node, L.params)
  local bj = nkb * 16
  -- [planes, n, bj]: f(plane, i, j) with the keys past n repeating key n - 1
  local function padded(planes, f)
    local t = tensor.new({ planes, n, bj })
    for c = 0, planes - 1 do
      for i = 0, n - 1 do
        for j = 0, bj - 1 do t.data[(c * n + i) * bj + j] = f(c, i, math.min(j, n - 1)) end
      end
    end
    return t
  end
  if bias then
    gp.bias = 1
    args[#args + 1] = L:weight(node.params.bias_table .. '@gathered', padded(h, bias), { { bj, 1 }, { n, bj }, { h, n * bj } })
  end
  if mask then
    gp.mask = 4
    local g = window_of(a)
    -- one copy for every layer of this shape (as Lowering:act's constants)
    local key = string.format('attention mask %dx%d/%dx%d/%dx%d', g.H, g.W, g.wh, g.ww, g.sh, g.sw)
    L.constants = L.constants or {}
    if not L.constants[key] then
      L.constants[key] = L:weight(key, padded(4, function(c, i, j) return mask[c](i, j) end),
        { { bj, 1 }, { n, bj }, { 4, n * bj } })
    end
    args[#args + 1] = L.constants[key]
  end
  args[#args + 1] = L:act(y, { { hd, 1 }, { h, hd }, { m, D } })
  args[#args + 1] = L:scratch(4 * 16 * hd * nkb * h * nw,
    { { 16, 1 }, { hd, 16 }, { nkb, 16 * hd }, { h * nw, 16 * hd * nkb } })
  args[#args + 1] = L:scratch(4 * hd * n * h * nw, { { hd, 1 }, { n, hd }, { h, hd * n }, { nw, hd * n * h } })
  return 'attention', gp, args
end

return attention
