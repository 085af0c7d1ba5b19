-- Swin Transformer (Liu et al., "Swin Transformer: Hierarchical Vision Transformer using Shifted
-- Windows", ICCV 2021), with the state_dict keys of torchvision 0.14's swin_t/s/b (flavor
-- 'torchvision') and of timm v0.4.12's swin_*_patch4_window7_224 (flavor 'timm').
-- A 4x4 stride-4 patch embedding conv and LayerNorm give a channels-last token map [1, H W, C]
-- (foldc's tokens; H x W = img x img_w, rectangular maps as both references run them); each stage
-- runs blocks
--   x = x + proj(W-MSA(qkv(LayerNorm1(x)))),  x = x + fc2(GELU(fc1(LayerNorm2(x))))
-- with attention inside 7x7 windows, every second block's windows shifted by half a window
-- (nn.window_attention: partition, roll and mask as index arithmetic in the attention kernel), a
-- relative position bias per head (relative_position_bias_table; the relative_position_index buffer
-- is recomputed, as each reference's __init__ computes it), then patch merging (2x2 neighbourhoods
-- concatenated, LayerNorm, Linear 4C -> 2C without bias) between stages; LayerNorm, the mean of the
-- tokens and the head. Keys:
--   torchvision: features.0.{0 (conv), 2 (LayerNorm)}, features.{1,3,5,7}.B.{norm1, attn.{qkv, proj,
--     relative_position_bias_table, relative_position_index [N*N]}, norm2, mlp.{0, 3}},
--     features.{2,4,6}.{reduction, norm}, norm, head. A map that is no multiple of the window is
--     padded as torchvision 0.14's shifted_window_attention pads it: zero tokens on the bottom and
--     right up to multiples of the window (after norm1; their q, k, v are qkv's bias and nothing
--     masks them), attention on the padded map, cropped back before proj (nn.WindowAttention's
--     o.pad); a window at least the padded map drops the shift along that axis (torchvision's
--     rule: a 5x5 map runs as one 7x7 window). An odd map before a patch merging gets a zero row
--     or column (_patch_merging_pad): 9x9 -> 5x5. swin_t at 256: maps 64, 32, 16, 8 padded to
--     70, 35, 21, 14.
--   timm: patch_embed.{proj, norm}, layers.S.blocks.B.{norm1, attn.{...index [N, N]}, norm2,
--     mlp.{fc1, fc2}} (shifted blocks also hold the attn_mask buffer [windows, N, N], checked to be
--     the mask the attention applies; optional, as the index), layers.S.downsample.{reduction, norm}, norm, head. A map whose
--     smaller side is no larger than the window takes that side as a square window and drops the
--     shift (timm's rule). timm
--     v0.4.12 neither pads nor merges odd maps (its window_partition and PatchMerging assert the
--     sizes): such maps are refused.
local nn = require 'nn'

local M = { family = 'Swin' }

local function Mlp(dim, hidden, flavor)
  local m = nn.Module(flavor == 'timm' and 'Mlp' or 'MLP')
  local a, b = flavor == 'timm' and 'fc1' or '0', flavor == 'timm' and 'fc2' or '3'
  m:add(a, nn.Linear(dim, hidden))
  m:add(b, nn.Linear(hidden, dim))
  function m:forward(x) return self[b](nn.gelu(self[a](x))) end
  return m
end

-- One block on an h x w token map; shift: the reference's (before its own rule for small maps).
local function Block(dim, heads, window, shift, mlp_ratio, flavor, h, w)
  local m = nn.Module('SwinTransformerBlock')
  local win, sh = { window, window }, { shift, shift }
  if flavor == 'timm' then
    if math.min(h, w) <= window then win, sh = { math.min(h, w), math.min(h, w) }, { 0, 0 } end
    if sh[1] > 0 then
      m:param('attn_mask', { (h / win[1]) * (w / win[2]), win[1] * win[2], win[1] * win[2] }, { buffer = true, optional = true })
    end
  else
    if window >= h then sh[1] = 0 end
    if window >= w then sh[2] = 0 end
  end
  local n = win[1] * win[2]
  m.norm1 = nn.LayerNorm(dim)
  m.attn = nn.WindowAttention(dim, win, heads, { index_shape = flavor == 'timm' and { n, n } or { n * n },
                                                 pad = flavor == 'torchvision' })
  m.norm2 = nn.LayerNorm(dim)
  m.mlp = Mlp(dim, math.floor(dim * mlp_ratio), flavor)
  function m:forward(x)
    local mask = (flavor == 'timm' and sh[1] > 0) and { self, 'attn_mask' } or nil
    x = x + self.attn(self.norm1(x), { h, w }, sh, mask)
    return x + self.mlp(self.norm2(x))
  end
  return m
end

local function PatchMerging(dim)
  local m = nn.Module('PatchMerging')
  m.reduction = nn.Linear(4 * dim, 2 * dim, { bias = false })
  m.norm = nn.LayerNorm(4 * dim)
  function m:forward(x, h, w) return self.reduction(self.norm(nn.merge_patches(x, h, w))) end
  return m
end

-- swin{flavor = 'torchvision' | 'timm', img = 224, img_w (the width when it differs from img), patch = 4,
--      embed_dim, depths, heads, window = 7, mlp_ratio = 4, num_classes = 1000}
function M.swin(cfg)
  local flavor, patch, window = cfg.flavor, cfg.patch or 4, cfg.window or 7
  if flavor ~= 'torchvision' and flavor ~= 'timm' then nn.fail(nn.caller_where(), 'swin: flavor must be torchvision or timm') end
  local m = nn.Module('SwinTransformer')
  local where = m._where
  local dims, res_h, res_w = {}, {}, {}
  local img_w = cfg.img_w or cfg.img
  local h, w = math.floor(cfg.img / patch), math.floor(img_w / patch)
  if #cfg.heads ~= #cfg.depths then nn.fail(where, 'swin: depths and heads differ in length') end
  for s = 1, #cfg.depths do
    dims[s] = cfg.embed_dim * 2 ^ (s - 1)
    res_h[s], res_w[s] = h, w
    if flavor == 'timm' and h >= 1 and w >= 1 then
      local win = math.min(h, w, window)
      if h % win ~= 0 or w % win ~= 0 then
        nn.fail(where, string.format('swin (timm): stage %d\'s %dx%d token map is no multiple of the %dx%d window '
          .. '(timm v0.4.12 does not pad; the torchvision flavor does)', s, h, w, win, win))
      end
      if s < #cfg.depths and (h % 2 ~= 0 or w % 2 ~= 0) then
        nn.fail(where, string.format('swin (timm): stage %d\'s %dx%d token map is odd before the patch merging '
          .. '(timm v0.4.12 asserts even sizes; the torchvision flavor pads)', s, h, w))
      end
    end
    h, w = math.ceil(h / 2), math.ceil(w / 2) -- torchvision pads an odd map; timm's are even
  end
  local stages, merges = {}, {}
  local function stage(s)
    local st = nn.Sequential()
    for b = 0, cfg.depths[s] - 1 do
      st:add(Block(dims[s], cfg.heads[s], window, b % 2 == 1 and math.floor(window / 2) or 0, cfg.mlp_ratio or 4,
        flavor, res_h[s], res_w[s]))
    end
    stages[s] = st
    return st
  end
  local embed = nn.Conv2d(3, cfg.embed_dim, patch, { stride = patch })
  local embed_norm = nn.LayerNorm(cfg.embed_dim)
  if flavor == 'torchvision' then
    m.features = nn.Sequential()
    m.features:add(nn.Module('Sequential'))
    m.features['0']:add('0', embed)
    m.features['0']:add('2', embed_norm)
    for s = 1, #dims do
      m.features:add(stage(s))
      if s < #dims then
        merges[s] = PatchMerging(dims[s])
        m.features:add(merges[s])
      end
    end
  else
    m.patch_embed = nn.Module('PatchEmbed')
    m.patch_embed.proj = embed
    m.patch_embed.norm = embed_norm
    m.layers = nn.Sequential()
    for s = 1, #dims do
      local layer = nn.Module('BasicLayer')
      layer.blocks = stage(s)
      if s < #dims then
        merges[s] = PatchMerging(dims[s])
        layer.downsample = merges[s]
      end
      m.layers:add(layer)
    end
  end
  m.norm = nn.LayerNorm(dims[#dims])
  m.head = nn.Linear(dims[#dims], cfg.num_classes or 1000)
  function m:forward(x)
    x = embed(x)
    if x.shape[3] ~= res_h[1] or x.shape[4] ~= res_w[1] then
      nn.fail(where, string.format('swin: img=%d, img_w=%d give a %dx%d token map, the input %dx%d', cfg.img,
        img_w, res_h[1], res_w[1], x.shape[3], x.shape[4]))
    end
    local t = embed_norm(nn.tokens(x))
    for s = 1, #dims do
      t = stages[s](t)
      if merges[s] then t = merges[s](t, res_h[s], res_w[s]) end
    end
    return self.head(nn.mean_tokens(self.norm(t)))
  end
  return m
end

M.from_weights = { num_classes = { key = 'head.weight', dim = 1 } }

local function cfg(flavor, embed_dim, depths, heads)
  return { build = M.swin, flavor = flavor, img = 224, patch = 4, embed_dim = embed_dim, depths = depths,
           heads = heads, window = 7, mlp_ratio = 4, input = { 1, 3, 224, 224 }, size_key = 'img', width_key = 'img_w' }
end

M.configs = {
  swin_t = cfg('torchvision', 96, { 2, 2, 6, 2 }, { 3, 6, 12, 24 }),
  swin_s = cfg('torchvision', 96, { 2, 2, 18, 2 }, { 3, 6, 12, 24 }),
  swin_b = cfg('torchvision', 128, { 2, 2, 18, 2 }, { 4, 8, 16, 32 }),
  swin_tiny_patch4_window7_224 = cfg('timm', 96, { 2, 2, 6, 2 }, { 3, 6, 12, 24 }),
  swin_small_patch4_window7_224 = cfg('timm', 96, { 2, 2, 18, 2 }, { 3, 6, 12, 24 }),
  swin_base_patch4_window7_224 = cfg('timm', 128, { 2, 2, 18, 2 }, { 4, 8, 16, 32 }),
}

return M
