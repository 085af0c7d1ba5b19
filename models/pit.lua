-- Pooling-based Vision Transformer (Heo et al., "Rethinking Spatial Dimensions of Vision
-- Transformers", ICCV 2021; naver-ai/pit), with the reference's state_dict keys:
--   pos_embed [1, C0, w, w] (added to the patch-embedding map), cls_token [1, T, C0] (T = 1, or 2
--   for the distilled models), patch_embed.conv, transformers.S.blocks.B.{norm1, attn.{qkv, proj},
--   norm2, mlp.{fc1, fc2}} (timm Block, LayerNorm eps 1e-6, exact GELU), pools.S.{conv, fc}
--   (depthwise 3x3 stride 2 conv with channel multiplier 2 on the map, Linear on the class tokens),
--   norm, head (and head_dist: a distilled model returns the mean of both heads at inference).
-- Each stage flattens the map into tokens behind the class tokens, runs its blocks and splits
-- them again. Also the ViT of PfLayer (M.vit) and the PfLayer variants (mixer = 'max': odd
-- blocks use the parameter-free mixer; see models/pflayer.lua).
local nn = require 'nn'

local M = { family = 'PiT/ViT' }

local function Mlp(dim, hidden)
  local m = nn.Module('Mlp')
  m.fc1 = nn.Linear(dim, hidden)
  m.act = nn.GELU()
  m.fc2 = nn.Linear(hidden, dim)
  function m:forward(x) return self.fc2(self.act(self.fc1(x))) end
  return m
end

-- PfLayer's parameter-free token mixer (EffLayer): Linear(dim, 3 dim), GELU, MaxPool2d(3, 1, 1) on
-- the sqrt(N) x sqrt(N) token grid, GELU, Linear(3 dim, dim).
local function MaxMixer(dim)
  local m = nn.Module('MaxMixer')
  m.qkv = nn.Linear(dim, dim * 3)
  m.proj = nn.Linear(dim * 3, dim)
  m.pool = nn.MaxPool2d(3, { stride = 1, padding = 1 })
  m.actv = nn.GELU()
  function m:forward(x)
    local n = x.shape[2]
    local s = math.floor(math.sqrt(n) + 0.5)
    if s * s ~= n then
      nn.fail(self._where, string.format('%s: %d tokens do not form a square grid (the max-pool mixer needs one)',
        self._path, n))
    end
    local t = self.actv(self.qkv(x))
    t = nn.tokens(self.pool(nn.token_map(t, s, s)))
    return self.proj(self.actv(t))
  end
  return m
end

-- timm's pre-norm Block; mixer 'max' puts PfLayer's mixer in place of attention. pf_order declares
-- norm2 after mlp as PfLayer's Block does (the key order of its state_dict).
local function Block(dim, heads, mlp_ratio, mixer, pf_order)
  local m = nn.Module('Block')
  m.norm1 = nn.LayerNorm(dim, { eps = 1e-6 })
  m.attn = mixer == 'max' and MaxMixer(dim) or nn.Attention(dim, heads)
  if pf_order then
    m.mlp = Mlp(dim, math.floor(dim * mlp_ratio))
    m.norm2 = nn.LayerNorm(dim, { eps = 1e-6 })
  else
    m.norm2 = nn.LayerNorm(dim, { eps = 1e-6 })
    m.mlp = Mlp(dim, math.floor(dim * mlp_ratio))
  end
  function m:forward(x)
    x = x + self.attn(self.norm1(x))
    return x + self.mlp(self.norm2(x))
  end
  return m
end
M.Block = Block

-- One stage: map [1, C, h, w] and class tokens [1, T, C] (or nil) -> { map, class tokens }.
local function Stage(dim, depth, heads, mlp_ratio, mixer)
  local m = nn.Module('Transformer')
  local pf = mixer == 'max'
  m.blocks = nn.Sequential()
  for i = 0, depth - 1 do
    m.blocks:add(Block(dim, heads, mlp_ratio, (i % 2 == 1 and pf) and 'max' or 'attn', pf))
  end
  function m:forward(x, cls)
    local h, w = x.shape[3], x.shape[4]
    local t = nn.tokens(x)
    local ncls = cls and cls.shape[2] or 0
    if cls then t = nn.cat_tokens(cls, t) end
    t = self.blocks(t)
    if cls then
      cls = nn.slice_tokens(t, 0, ncls)
      t = nn.slice_tokens(t, ncls, h * w)
    end
    return { nn.token_map(t, h, w), cls }
  end
  return m
end

local function HeadPooling(cin, cout, with_fc)
  local m = nn.Module('conv_head_pooling')
  m.conv = nn.Conv2d(cin, cout, 3, { stride = 2, padding = 1, groups = cin })
  if with_fc then m.fc = nn.Linear(cin, cout) end
  function m:forward(x, cls)
    return { self.conv(x), cls and self.fc(cls) or nil }
  end
  return m
end

-- The position grid: the checkpoint's (pos_img: the input size it was trained at, from the weights)
-- resampled to the input's grid when they differ and resample_pos_embed names a mode.
local function pos_resample(cfg, from, to, prefix, where)
  if from == to then return nil end
  local mode = cfg.resample_pos_embed
  if mode ~= nil and mode ~= 'none' and mode ~= 'bicubic' and mode ~= 'bicubic_antialias' then
    nn.fail(where, 'resample_pos_embed=' .. tostring(mode) .. ': expected none, bicubic or bicubic_antialias')
  end
  if mode == nil or mode == 'none' then
    nn.fail(where, string.format('pos_embed: the checkpoint has a %dx%d grid, the input needs %dx%d (resample_pos_embed=bicubic resamples it)',
      from, from, to, to))
  end
  return { resample = { grid = { from, from }, prefix = prefix, mode = mode } }
end

-- pit{img, patch, stride, base_dims, depth, heads, mlp_ratio = 4, num_classes = 1000,
--     cls_tokens = 1 (2: distilled, 0: PfLayer's PiT), mixer = 'attn' | 'max',
--     resample_pos_embed = 'none' | 'bicubic' | 'bicubic_antialias'}
function M.pit(cfg)
  local m = nn.Module('PoolingTransformer')
  local where = m._where
  local ncls = cfg.cls_tokens or 1
  local width = math.floor((cfg.img - cfg.patch) / cfg.stride) + 1
  local pos_width = math.floor(((cfg.pos_img or cfg.img) - cfg.patch) / cfg.stride) + 1
  local dims = {}
  for i, b in ipairs(cfg.base_dims) do dims[i] = b * cfg.heads[i] end
  if #cfg.depth ~= #dims or #cfg.heads ~= #dims then nn.fail(where, 'pit: base_dims, depth and heads differ in length') end
  m:param('pos_embed', { 1, dims[1], width, width }, pos_resample(cfg, pos_width, width, 0, where))
  if ncls > 0 then m:param('cls_token', { 1, ncls, dims[1] }) end
  m.patch_embed = nn.Module('conv_embedding')
  m.patch_embed.conv = nn.Conv2d(3, dims[1], cfg.patch, { stride = cfg.stride })
  m.patch_embed.forward = function(self, x) return self.conv(x) end
  m.transformers = nn.Sequential()
  m.pools = nn.Sequential()
  for i = 1, #dims do
    m.transformers:add(Stage(dims[i], cfg.depth[i], cfg.heads[i], cfg.mlp_ratio or 4, cfg.mixer))
    if i < #dims then
      if dims[i + 1] % dims[i] ~= 0 then
        nn.fail(where, string.format('pit: stage %d width %d is not a multiple of stage %d width %d', i, dims[i + 1], i - 1, dims[i]))
      end
      m.pools:add(HeadPooling(dims[i], dims[i + 1], ncls > 0))
    end
  end
  m.norm = nn.LayerNorm(dims[#dims], { eps = 1e-6 })
  m.head = nn.Linear(dims[#dims], cfg.num_classes or 1000)
  if ncls == 2 then m.head_dist = nn.Linear(dims[#dims], cfg.num_classes or 1000) end
  function m:forward(x)
    x = self.patch_embed(x)
    local s = x.shape
    if s[3] ~= width or s[4] ~= width then
      nn.fail(where, string.format('pos_embed: a %dx%d grid, but the patch embedding gives %dx%d', width, width, s[3], s[4]))
    end
    x = x + nn.parameter(self, 'pos_embed')
    local cls = ncls > 0 and nn.parameter(self, 'cls_token') or nil
    local stages, pools = {}, {}
    for _, st in self.transformers:children() do stages[#stages + 1] = st end
    for _, p in self.pools:children() do pools[#pools + 1] = p end
    for i, stage in ipairs(stages) do
      local r = stage(x, cls)
      x, cls = r[1], r[2]
      if pools[i] then
        r = pools[i](x, cls)
        x, cls = r[1], r[2]
      end
    end
    if ncls == 0 then return self.head(nn.mean_tokens(self.norm(nn.tokens(x)))) end
    cls = self.norm(cls)
    if ncls == 2 then
      return nn.mul(self.head(nn.select_token(cls, 0)) + self.head_dist(nn.select_token(cls, 1)), 0.5)
    end
    return self.head(nn.select_token(cls, 0))
  end
  return m
end

-- ViT: PfLayer's EffTransformer (cls_tokens = 0: patch_embed.proj, pos_embed [1, N, dim] on the
-- tokens, no class token, blocks.B (even: attention, odd: the max mixer when mixer = 'max'), norm,
-- mean of the tokens, head), or timm's VisionTransformer / DeiT (cls_tokens = 1: cls_token in front
-- of the patch tokens, pos_embed [1, N + 1, dim], head on the class token after norm; 2: DeiT
-- distilled, with dist_token second and head_dist, the mean of both heads at inference).
-- vit{img, patch, dim, depth, heads, mlp_ratio = 4, num_classes = 1000, mixer = 'max' | 'attn',
--     cls_tokens = 0 | 1 | 2, resample_pos_embed = 'none' | 'bicubic' | 'bicubic_antialias'}
function M.vit(cfg)
  local m = nn.Module(cfg.cls_tokens and cfg.cls_tokens > 0 and 'VisionTransformer' or 'EffTransformer')
  local where = m._where
  local ncls = cfg.cls_tokens or 0
  local grid = math.floor(cfg.img / cfg.patch)
  local pos_grid = math.floor((cfg.pos_img or cfg.img) / cfg.patch)
  if ncls > 0 then m:param('cls_token', { 1, 1, cfg.dim }) end
  if ncls > 1 then m:param('dist_token', { 1, 1, cfg.dim }) end
  m.patch_embed = nn.Module('PatchEmbed')
  m.patch_embed.proj = nn.Conv2d(3, cfg.dim, cfg.patch, { stride = cfg.patch })
  m.patch_embed.forward = function(self, x) return nn.tokens(self.proj(x)) end
  m:param('pos_embed', { 1, grid * grid + ncls, cfg.dim }, pos_resample(cfg, pos_grid, grid, ncls, where))
  m.blocks = nn.Sequential()
  for i = 0, cfg.depth - 1 do
    m.blocks:add(Block(cfg.dim, cfg.heads, cfg.mlp_ratio or 4, i % 2 == 1 and cfg.mixer or 'attn', ncls == 0))
  end
  m.norm = nn.LayerNorm(cfg.dim, { eps = 1e-6 })
  m.head = nn.Linear(cfg.dim, cfg.num_classes or 1000)
  if ncls > 1 then m.head_dist = nn.Linear(cfg.dim, cfg.num_classes or 1000) end
  function m:forward(x)
    local t = self.patch_embed(x)
    if t.shape[2] ~= grid * grid then
      nn.fail(where, string.format('pos_embed: %d tokens, but the patch embedding gives %d', grid * grid + ncls,
        t.shape[2] + ncls))
    end
    if ncls > 1 then t = nn.cat_tokens(nn.parameter(self, 'dist_token'), t) end
    if ncls > 0 then t = nn.cat_tokens(nn.parameter(self, 'cls_token'), t) end
    t = self.norm(self.blocks(t + nn.parameter(self, 'pos_embed')))
    if ncls == 0 then return self.head(nn.mean_tokens(t)) end
    if ncls == 2 then
      return nn.mul(self.head(nn.select_token(t, 0)) + self.head_dist(nn.select_token(t, 1)), 0.5)
    end
    return self.head(nn.select_token(t, 0))
  end
  return m
end

-- The weights determine the number of classes (head.weight) and the input size (img, the input's
-- height and width: size_key): PiT's pos_embed [1, C, w, w] has w = (img - patch) / stride + 1, a
-- ViT's [1, (img / patch)^2 + cls_tokens, dim]. Another input size (--input) is taken only with
-- resample_pos_embed = 'bicubic' (timm v0.4.12's resize_pos_embed) or 'bicubic_antialias' (timm
-- >= 0.9's resample_abs_pos_embed); the checkpoint's size is then pos_img.
M.pit_from_weights = { num_classes = { key = 'head.weight', dim = 1 }, cls_tokens = { key = 'cls_token', dim = 2 },
                       img = { key = 'pos_embed', dim = 3, minus = 1, times = 'stride', plus = 'patch',
                               other_with = 'resample_pos_embed', checkpoint_as = 'pos_img' } }
M.vit_from_weights = { num_classes = { key = 'head.weight', dim = 1 },
                       img = { key = 'pos_embed', dim = 2, minus = 'cls_tokens', root = 2, times = 'patch',
                               other_with = 'resample_pos_embed', checkpoint_as = 'pos_img' } }

local function pit_cfg(patch, stride, base, depth, heads, ncls)
  return { build = M.pit, img = 224, patch = patch, stride = stride, base_dims = { base, base, base },
           depth = depth, heads = heads, mlp_ratio = 4, cls_tokens = ncls, input = { 1, 3, 224, 224 },
           from_weights = M.pit_from_weights, size_key = 'img', resample_pos_embed = 'none' }
end

M.configs = {
  pit_ti = pit_cfg(16, 8, 32, { 2, 6, 4 }, { 2, 4, 8 }, 1),
  pit_xs = pit_cfg(16, 8, 48, { 2, 6, 4 }, { 2, 4, 8 }, 1),
  pit_s = pit_cfg(16, 8, 48, { 2, 6, 4 }, { 3, 6, 12 }, 1),
  pit_b = pit_cfg(14, 7, 64, { 3, 6, 4 }, { 4, 8, 16 }, 1),
  pit_ti_distilled = pit_cfg(16, 8, 32, { 2, 6, 4 }, { 2, 4, 8 }, 2),
  pit_xs_distilled = pit_cfg(16, 8, 48, { 2, 6, 4 }, { 2, 4, 8 }, 2),
  pit_s_distilled = pit_cfg(16, 8, 48, { 2, 6, 4 }, { 3, 6, 12 }, 2),
  pit_b_distilled = pit_cfg(14, 7, 64, { 3, 6, 4 }, { 4, 8, 16 }, 2),
}

-- timm ViT / DeiT (patch 16, 224x224; keys as timm's VisionTransformer / VisionTransformerDistilled).
-- A distillation token (and head) is taken from the checkpoint too: cls_tokens = 2 when it has dist_token.
M.timm_vit_from_weights = { cls_tokens = { key = 'dist_token', present = 2, absent = 1 } }
for k, v in pairs(M.vit_from_weights) do M.timm_vit_from_weights[k] = v end
local function vit_cfg(dim, heads, ncls)
  return { build = M.vit, img = 224, patch = 16, dim = dim, depth = 12, heads = heads, mlp_ratio = 4,
           cls_tokens = ncls, input = { 1, 3, 224, 224 }, from_weights = M.timm_vit_from_weights, size_key = 'img',
           resample_pos_embed = 'none' }
end
M.configs.vit_tiny_patch16_224 = vit_cfg(192, 3, 1)
M.configs.vit_small_patch16_224 = vit_cfg(384, 6, 1)
M.configs.vit_base_patch16_224 = vit_cfg(768, 12, 1)
-- timm's DeiT without distillation is its VisionTransformer: the same keys as the ViTs above.
-- timm's fine-tuned 384x384 ViTs/DeiTs: the same models on a 24x24 grid (img from pos_embed too).
for _, name in ipairs({ 'vit_tiny', 'vit_small', 'vit_base', 'deit_base' }) do
  local cfg = vit_cfg(({ vit_tiny = 192, vit_small = 384, vit_base = 768, deit_base = 768 })[name],
    ({ vit_tiny = 3, vit_small = 6, vit_base = 12, deit_base = 12 })[name], 1)
  cfg.img, cfg.input = 384, { 1, 3, 384, 384 }
  M.configs[name .. '_patch16_384'] = cfg
end
M.configs.deit_tiny_patch16_224 = vit_cfg(192, 3, 1)
M.configs.deit_small_patch16_224 = vit_cfg(384, 6, 1)
M.configs.deit_base_patch16_224 = vit_cfg(768, 12, 1)
M.configs.deit_tiny_distilled_patch16_224 = vit_cfg(192, 3, 2)
M.configs.deit_small_distilled_patch16_224 = vit_cfg(384, 6, 2)
M.configs.deit_base_distilled_patch16_224 = vit_cfg(768, 12, 2)

return M
