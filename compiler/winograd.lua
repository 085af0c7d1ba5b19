-- Winograd F(m x m, 3 x 3) for stride-1 3x3 dense convolutions (Lavin & Gray 2016): the lowering
-- side of halide/winograd.cpp (generator conv2d_winograd). The lowering stage (lower.lua) asks
-- winograd.choose(node, ...) and, when it says so, lowers the conv here instead of to the direct
-- kernel.
--
-- Maths: per m x m output tile, Y = A^T [ (G g G^T) (.) (B^T d B) ] A, summed over input channels in
-- the transformed domain (a = m + 2 points per side). The matrices come from Toom-Cook on a - 1
-- finite points p_j and infinity; the weights' transform is done here, once, in double, and
-- rounded once to float:
--   G[j][k] = p_j^k / prod_{l != j} (p_j - p_l)   (j < a - 1),   G[a-1] = (0, 0, 1)
--   U[ey][ex] = sum_{ky,kx} G[ey][ky] g[ky][kx] G[ex][kx],   packed (co, ci, ex, ey), co innermost.
-- The generator builds A^T and B^T from the same points (winograd.POINTS, its default_points()).
--
-- Choice (winograd.choose), for eligible convs (groups 1, 3x3, stride 1, dilation 1, at least 16
-- input and output channels), first of:
--   1. FOLDC_CONV_ALGO when set and not `auto` (testing): `direct`, `winograd` (F(4x4)),
--      `winograd2` / `winograd4` / `winograd6` (that F(m x m)) for every eligible conv;
--   2. the conv's algorithm record for the build's target (`algo <direct conv2d signature>` in
--      schedules/<target>/, written by foldc tune's algorithm run-off in the model: tune.lua), which
--      the lowering stage looks up (lower.algo_key);
--   3. the cheapest of direct, F(2x2) and F(4x4) by winograd.cost with the target's constants
--      (targets/<family>.lua winograd(): Winograd only when it is estimated at least 10% faster).
-- The tuner forces one algorithm for its variants with the lowering's conv_algo, above them all.
local tensor = require 'tensor'

local winograd = {}

-- Interpolation points per m (keep in step with default_points() in halide/winograd.cpp). For
-- F(4x4) 1/2 instead of 2 halves the transform's rounding error (measured: 2.1e-6 vs 5.4e-6
-- relative, 64 channels).
winograd.POINTS = {
  [2] = { 0, 1, -1 },
  [4] = { 0, 1, -1, 0.5, -2 },
  [6] = { 0, 1, -1, 2, -2, 0.5, -0.5 },
}

-- G (a x 3, a Lua array of rows, doubles) for F(m, 3) on the given points.
function winograd.G(m, points)
  points = points or winograd.POINTS[m]
  local a = m + 2
  assert(points and #points == a - 1, 'winograd: no points for m=' .. tostring(m))
  local G = {}
  for j = 1, a - 1 do
    local f = 1
    for l = 1, a - 1 do
      if l ~= j then f = f * (points[j] - points[l]) end
    end
    G[j] = { 1 / f, points[j] / f, points[j] * points[j] / f }
  end
  G[a] = { 0, 0, 1 }
  return G
end

-- A^T (m x a), G (a x 3) and B^T (a x a) for F(m, 3), as halide/winograd.cpp builds them (Lua
-- arrays of rows): A^T[i][j] = p_j^i, A^T[i][a] = [i == m]; B^T[j] = ascending coefficients of
-- prod_{l != j} (x - p_l), B^T[a] = those of prod_l (x - p_l). For the tests.
function winograd.matrices(m, points)
  points = points or winograd.POINTS[m]
  local a = m + 2
  local AT, BT = {}, {}
  for i = 1, m do
    AT[i] = {}
    for j = 1, a - 1 do AT[i][j] = points[j] ^ (i - 1) end
    AT[i][a] = (i == m) and 1 or 0
  end
  for j = 1, a do
    local poly = { 1 } -- ascending coefficients
    for l = 1, a - 1 do
      if l ~= j then
        local nxt = {}
        for k = 1, #poly + 1 do nxt[k] = 0 end
        for k = 1, #poly do
          nxt[k + 1] = nxt[k + 1] + poly[k]
          nxt[k] = nxt[k] - points[l] * poly[k]
        end
        poly = nxt
      end
    end
    BT[j] = {}
    for k = 1, a do BT[j][k] = poly[k] or 0 end
  end
  return AT, winograd.G(m, points), BT
end

-- U = G g G^T for every (co, ci): W is the OIHW [cout, cin, 3, 3] weight; returns the packed tensor
-- [a][a][cin][cout] (dims (co, ci, ex, ey)), or with ub > 0 blocked by ub output channels,
-- [cout/ub][a][a][cin][ub] (dims (co % ub, ci, ex, ey + a * (co / ub))).
function winograd.transform_weights(W, cout, cin, m, ub)
  local a = m + 2
  local G = winograd.G(m)
  ub = ub or 0
  local U = ub > 0 and tensor.new({ cout / ub, a, a, cin, ub }) or tensor.new({ a, a, cin, cout })
  local wd, ud = W.data, U.data
  local g, t = {}, {}
  for co = 0, cout - 1 do
    -- U[ey][ex][ci] of this co at ((ey * a + ex) * cin + ci) * step + off
    local off = ub > 0 and (math.floor(co / ub) * a * a * cin * ub + co % ub) or co
    local step = ub > 0 and ub or cout
    for ci = 0, cin - 1 do
      local base = (co * cin + ci) * 9
      for k = 0, 8 do g[k] = wd[base + k] end -- g[ky*3 + kx]
      for ey = 1, a do -- t = G g (a x 3)
        local r = G[ey]
        for kx = 0, 2 do
          t[(ey - 1) * 3 + kx] = r[1] * g[kx] + r[2] * g[3 + kx] + r[3] * g[6 + kx]
        end
      end
      for ey = 1, a do -- U = t G^T
        local t0, t1, t2 = t[(ey - 1) * 3], t[(ey - 1) * 3 + 1], t[(ey - 1) * 3 + 2]
        for ex = 1, a do
          local r = G[ex]
          ud[(((ey - 1) * a + (ex - 1)) * cin + ci) * step + off] = t0 * r[1] + t1 * r[2] + t2 * r[3]
        end
      end
    end
  end
  return U
end

-- Estimated seconds of a cin -> cout 3x3 conv over an ow x oh map on one core of target T: direct
-- (m = nil) or F(m x m). Compute at a fraction of the FMA peak (T.winograd.eff: the transforms'
-- share grows with m) plus the weights' stream from DRAM (a model's layers find their weights
-- cold; F(m x m) reads (m+2)^2/9 times the direct bytes). On x86 with AVX-512 (calibrated on
-- resnet50's layers, 1 thread): 56x56x64 and 28x28x128 go to F(4x4), 14x14x256 to F(2x2), 7x7x512
-- stays direct (its transformed weights, 17-38 MB, cost more than the multiplies saved).
function winograd.cost(cin, cout, ow, oh, m, T)
  local c = T.winograd
  if not m then return 2 * 9 * cin * cout * ow * oh / (c.peak * c.eff.direct) + 4 * 9 * cin * cout / c.dram end
  local a, tiles = m + 2, math.ceil(ow / m) * math.ceil(oh / m)
  return 2 * a * a * cin * cout * tiles / (c.peak * c.eff[m]) + 4 * a * a * cin * cout / c.dram
end

-- Whether a conv2d node can run as Winograd at all; when not, also why (the first condition it
-- fails, as text: "stride 2x2").
function winograd.eligible(node)
  local a = node.attrs
  local function pair(v) return v[1] .. 'x' .. v[2] end
  local why = a.groups ~= 1 and ('groups ' .. a.groups)
    or (a.kernel[1] ~= 3 or a.kernel[2] ~= 3) and ('kernel ' .. pair(a.kernel))
    or (a.stride[1] ~= 1 or a.stride[2] ~= 1) and ('stride ' .. pair(a.stride))
    or (a.dilation[1] ~= 1 or a.dilation[2] ~= 1) and ('dilation ' .. pair(a.dilation))
    or (a.cin < 16 or a.cout < 16) and (a.cin .. '->' .. a.cout .. ' channels, fewer than 16')
    or #node.inputs[1].shape ~= 4 and 'not a feature map'
    -- RepMLP's partition FC runs as a conv whose weight is not [cout, cin, 3, 3]
    or (node.outputs[1].shape[3] + 2 ~= node.inputs[1].shape[3] + 2 * a.padding[1]
        or node.outputs[1].shape[4] + 2 ~= node.inputs[1].shape[4] + 2 * a.padding[2]) and 'not a 3x3 window over its input'
  if why then return false, why end
  return true
end

-- An algorithm's name -> the tile size m (nil: direct). `where` names its source in the error.
local function tile_of(algo, where)
  if algo == 'direct' then return nil end
  if algo == 'winograd' then return 4 end
  local m = tonumber(algo:match('^winograd(%d)$'))
  if m and winograd.POINTS[m] then return m end
  error(where .. algo .. ': expected auto, direct, winograd, winograd2, winograd4 or winograd6', 0)
end

-- The tile size m to run this conv with (nil: the direct kernel), and why, as text for the bundle's
-- report (winograd.eligible's reason, FOLDC_CONV_ALGO=..., conv_algo=..., the record, or the cost
-- model's estimates). opts: mode (an algorithm name forces it, `auto` chooses; in place of
-- FOLDC_CONV_ALGO: the lowering's conv_algo), record (the algorithm of the conv's record), where
-- (that record's file and key, "FILE: KEY") and target (a target object, for the cost model).
function winograd.choose(node, opts)
  local ok, why = winograd.eligible(node)
  if not ok then return nil, 'Winograd not eligible: ' .. why end
  local mode = opts.mode or os.getenv('FOLDC_CONV_ALGO')
  if mode and mode ~= '' and mode ~= 'auto' then
    local by = opts.mode and 'conv_algo=' or 'FOLDC_CONV_ALGO='
    return tile_of(mode, by), by .. mode
  end
  if opts.record then return tile_of(opts.record, opts.where .. ': '), 'algorithm record in ' .. opts.where end
  local a, y = node.attrs, node.outputs[1].shape
  local t = winograd.cost(a.cin, a.cout, y[4], y[3], nil, opts.target)
  local best, best_t, est = nil, 0.9 * t, { string.format('direct %.1f us', t * 1e6) }
  for _, m in ipairs({ 2, 4 }) do
    t = winograd.cost(a.cin, a.cout, y[4], y[3], m, opts.target)
    est[#est + 1] = string.format('F(%dx%d) %.1f us', m, m, t * 1e6)
    if t < best_t then best, best_t = m, t end
  end
  return best, 'cost model, 1 core: ' .. table.concat(est, ', ') .. ' (Winograd when 10% faster)'
end

-- Lower a conv chosen by winograd.choose: the generator, its parameters and the argument views.
-- choice: the lowering stage's (lower.lua): algo = m, w_block = the output channels U is blocked
-- by (u_block, halide/winograd.cpp: a co tile's weights stream from DRAM as a few sequential runs;
-- 0 = unblocked).
function winograd.lower(node, L, choice, lower)
  local a = node.attrs
  local x, y = node.inputs[1], node.outputs[1]
  local W = L.params[node.params.weight]
  local m, ub = choice.algo, choice.w_block
  local cout, cin, al = a.cout, a.cin, m + 2
  local U = winograd.transform_weights(W, cout, cin, m, ub)
  local dims = { { cout, 1 }, { cin, cout }, { al, cout * cin }, { al, cout * cin * al } }
  if ub > 0 then dims = { { ub, 1 }, { cin, ub }, { al, ub * cin }, { al * cout / ub, ub * cin * al } } end
  local args = {
    L:act(x, lower.act_dims(x.shape)),
    L:weight(node.params.weight .. '@winograd' .. m .. (ub > 0 and 'b' .. ub or ''), U, dims),
    L:bias(node, cout),
  }
  if node.inputs[2] then args[#args + 1] = L:act(node.inputs[2], lower.act_dims(y.shape)) end
  args[#args + 1] = L:act(y, lower.act_dims(y.shape))
  return 'conv2d_winograd', {
    cin = cin, cout = cout, in_w = x.shape[4], in_h = x.shape[3], out_w = y.shape[4], out_h = y.shape[3],
    pad_x = a.padding[2], pad_y = a.padding[1], relu = a.relu and true or false,
    residual = node.inputs[2] ~= nil, m = m, u_block = ub > 0 and ub or nil,
    in_cs = L:row_channels_of(x), out_cs = L:row_channels_of(y), -- channel slices (lower.lua)
  }, args
end

return winograd
