-- Resampling a learned position grid (a ViT's or PiT's pos_embed) to another grid, at bind time,
-- as PyTorch's F.interpolate(mode='bicubic', align_corners=False) does on the grid:
--   'bicubic'            antialias=False: timm v0.4.12's resize_pos_embed. Keys's cubic convolution
--                        (Keys, "Cubic convolution interpolation for digital image processing", 1981)
--                        with A = -0.75 at source x = (i + 0.5) * in / out - 0.5, the 4 taps
--                        floor(x) - 1 .. floor(x) + 2 clamped to the grid.
--   'bicubic_antialias'  antialias=True: timm >= 0.9's resample_abs_pos_embed default. The cubic
--                        filter with A = -0.5, centred at (i + 0.5) * s, s = in / out, stretched by
--                        max(s, 1), over the taps within its support (2 max(s, 1)) inside the grid,
--                        weights normalised to sum 1.
-- Both are separable: along the width, then the height; computed in double, stored as float32.
-- A tensor of rank 3 is tokens [1, prefix + h*w, D] (the prefix tokens, class and distillation,
-- kept as they are, the grid row-major behind them); rank 4 is a map [1, C, h, w].
local tensor = require 'tensor'

local resample = {}

resample.MODES = { bicubic = true, bicubic_antialias = true }

local function cubic(x, a)
  x = math.abs(x)
  if x <= 1 then return ((a + 2) * x - (a + 3)) * x * x + 1 end
  if x < 2 then return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a end
  return 0
end

-- For each output index i in 0..n_out-1: { taps = {source indices}, w = {weights} }.
local function taps(n_in, n_out, mode)
  local s, out = n_in / n_out, {}
  for i = 0, n_out - 1 do
    local t, w = {}, {}
    if mode == 'bicubic' then
      local x = (i + 0.5) * s - 0.5
      local x0 = math.floor(x)
      local f = x - x0
      local c = { cubic(f + 1, -0.75), cubic(f, -0.75), cubic(1 - f, -0.75), cubic(2 - f, -0.75) }
      for k = 1, 4 do
        t[k] = math.min(math.max(x0 - 2 + k, 0), n_in - 1)
        w[k] = c[k]
      end
    else
      local support, inv = 2 * math.max(s, 1), 1 / math.max(s, 1)
      local centre = (i + 0.5) * s
      local lo = math.max(math.floor(centre - support + 0.5), 0)
      local hi = math.min(math.floor(centre + support + 0.5), n_in)
      local total = 0
      for j = lo, hi - 1 do
        local v = cubic((j - centre + 0.5) * inv, -0.5)
        t[#t + 1], w[#w + 1] = j, v
        total = total + v
      end
      for k = 1, #w do w[k] = w[k] / total end
    end
    out[i] = { taps = t, w = w }
  end
  return out
end

-- grid values g(c, y, x) = get(c, y, x) for c < channels, resampled to oh x ow: put(c, y, x, v).
local function resample_grid(channels, h, w, oh, ow, mode, get, put)
  local tx, ty = taps(w, ow, mode), taps(h, oh, mode)
  local rows = {}
  for c = 0, channels - 1 do
    for y = 0, h - 1 do
      local row = {}
      for x = 0, ow - 1 do
        local acc, tp = 0, tx[x]
        for k = 1, #tp.taps do acc = acc + tp.w[k] * get(c, y, tp.taps[k]) end
        row[x] = acc
      end
      rows[y] = row
    end
    for y = 0, oh - 1 do
      local tp = ty[y]
      for x = 0, ow - 1 do
        local acc = 0
        for k = 1, #tp.taps do acc = acc + tp.w[k] * rows[tp.taps[k]][x] end
        put(c, y, x, acc)
      end
    end
  end
end

-- t (the checkpoint's tensor, grid from = {h, w}) resampled to grid to = {h', w'} with `prefix`
-- leading tokens kept (rank 3 only).
function resample.grid(t, from, to, prefix, mode)
  assert(resample.MODES[mode], 'resample: unknown mode')
  local h, w, oh, ow = from[1], from[2], to[1], to[2]
  local d = t.data
  if #t.shape == 4 then
    local c = t.shape[2]
    local out = tensor.new({ 1, c, oh, ow })
    local o = out.data
    resample_grid(c, h, w, oh, ow, mode, function(ch, y, x) return d[(ch * h + y) * w + x] end,
      function(ch, y, x, v) o[(ch * oh + y) * ow + x] = v end)
    return out
  end
  local dim = t.shape[3]
  local out = tensor.new({ 1, prefix + oh * ow, dim })
  local o = out.data
  for i = 0, prefix * dim - 1 do o[i] = d[i] end
  resample_grid(dim, h, w, oh, ow, mode, function(ch, y, x) return d[(prefix + y * w + x) * dim + ch] end,
    function(ch, y, x, v) o[(prefix + y * ow + x) * dim + ch] = v end)
  return out
end

return resample
