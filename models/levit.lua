-- LeViT (Graham et al., "LeViT: a Vision Transformer in ConvNet's Clothing for Faster Inference",
-- ICCV 2021), as timm v0.4.12's levit.py defines it (the facebookresearch/LeViT model), with its
-- state_dict keys:
--   patch_embed.{0,2,4,6}: four 3x3 stride-2 Conv2d_BN (c, bn) with Hardswish between: 16x smaller
--   blocks.B: Residual(m) of Attention (m.qkv, m.proj.1: Linear_BN = Linear without bias (c) and
--     BatchNorm1d over the tokens' channels (bn), folded; m.attention_biases, m.attention_bias_idxs)
--     or of an MLP (m.0, m.2: Linear_BN with Hardswish between); between stages AttentionSubsample
--     (kv, q.1, proj.1; queries from the grid subsampled by 2, no residual) and a Residual MLP
--   head, head_dist: BN_Linear (bn, then l: BatchNorm1d folded into the Linear) on the mean of the
--     tokens, averaged at inference (the distilled model).
-- The attention is q k^T key_dim^-0.5 plus a learned bias per head and query-key offset
-- (ops/levit_attention.lua), Hardswish before proj.
local nn = require 'nn'

local M = { family = 'LeViT' }

local function Linear_BN(a, b)
  local m = nn.Module('Linear_BN')
  m.c = nn.Linear(a, b, { bias = false })
  m.bn = nn.BatchNorm1d(b, { tokens = true })
  function m:forward(x) return self.bn(self.c(x)) end
  return m
end

local function Conv2d_BN(a, b)
  local m = nn.Module('Conv2d_BN')
  m.c = nn.Conv2d(a, b, 3, { stride = 2, padding = 1, bias = false })
  m.bn = nn.BatchNorm2d(b)
  function m:forward(x) return self.bn(self.c(x)) end
  return m
end

local function BN_Linear(a, b)
  local m = nn.Module('BN_Linear')
  m.bn = nn.BatchNorm1d(a)
  m.l = nn.Linear(a, b)
  function m:forward(x) return self.l(self.bn(x)) end
  return m
end

local function Residual(child)
  local m = nn.Module('Residual')
  m.m = child
  function m:forward(x) return x + self.m(x) end
  return m
end

local function offsets(res, stride)
  local rq = math.floor((res - 1) / stride) + 1
  -- every |dy|, |dx| < res appears (the first query is the grid's corner)
  return res * res, rq
end

local function Attention(dim, kd, heads, ratio, res)
  local m = nn.Module('Attention')
  local vd = ratio * kd
  m.qkv = Linear_BN(dim, heads * (2 * kd + vd))
  m.proj = nn.Sequential(nn.Hardswish(), Linear_BN(heads * vd, dim))
  local n = offsets(res, 1)
  m:param('attention_biases', { heads, n })
  -- the index buffer: accepted, its values recomputed (ops/levit_attention.lua)
  m:param('attention_bias_idxs', { res * res, res * res }, { buffer = true, optional = true, dtype = 'I64' })
  function m:forward(x)
    local y = nn.levit_attention(self.qkv(x), { heads = heads, key_dim = kd, value_dim = vd, res = res }, self)
    return self.proj(y)
  end
  return m
end

local function AttentionSubsample(cin, cout, kd, heads, ratio, stride, res)
  local m = nn.Module('AttentionSubsample')
  local vd = ratio * kd
  local n, rq = offsets(res, stride)
  m.kv = Linear_BN(cin, heads * (kd + vd))
  m.q = nn.Sequential(nn.MaxPool2d(1, { stride = stride }), Linear_BN(cin, heads * kd))
  m.proj = nn.Sequential(nn.Hardswish(), Linear_BN(heads * vd, cout))
  m:param('attention_biases', { heads, n })
  m:param('attention_bias_idxs', { rq * rq, res * res }, { buffer = true, optional = true, dtype = 'I64' })
  function m:forward(x)
    -- Subsample: the tokens as their res x res grid, every stride-th row and column
    local sub = nn.tokens(self.q['0'](nn.token_map(x, res, res)))
    local q = self.q['1'](sub)
    local y = nn.levit_attention(self.kv(x), { heads = heads, key_dim = kd, value_dim = vd, res = res,
                                              stride = stride, q = q }, self)
    return self.proj(y)
  end
  return m
end

local function Mlp(dim, hidden)
  return nn.Sequential(Linear_BN(dim, hidden), nn.Hardswish(), Linear_BN(hidden, dim))
end

-- levit{img = 224, embed_dim = {C1, C2, C3}, key_dim = D, heads = {N1, N2, N3}, depth = {X1, X2, X3},
--       attn_ratio = 2, mlp_ratio = 2, num_classes = 1000, distillation = true}; between stages an
--       AttentionSubsample of key_dim D, C_i / D heads, attention ratio 4, MLP ratio 2, stride 2
function M.levit(cfg)
  local m = nn.Module('LeViT')
  local where = m._where
  local C, D = cfg.embed_dim, cfg.key_dim
  local ar, mr = cfg.attn_ratio or 2, cfg.mlp_ratio or 2
  m.patch_embed = nn.Sequential(Conv2d_BN(3, C[1] / 8), nn.Hardswish(), Conv2d_BN(C[1] / 8, C[1] / 4), nn.Hardswish(),
    Conv2d_BN(C[1] / 4, C[1] / 2), nn.Hardswish(), Conv2d_BN(C[1] / 2, C[1]))
  local res = math.floor(cfg.img / 16)
  local res0 = res
  m.blocks = nn.Sequential()
  for i = 1, #C do
    for _ = 1, cfg.depth[i] do
      m.blocks:add(Residual(Attention(C[i], D, cfg.heads[i], ar, res)))
      m.blocks:add(Residual(Mlp(C[i], mr * C[i])))
    end
    if i < #C then
      m.blocks:add(AttentionSubsample(C[i], C[i + 1], D, C[i] / D, 4, 2, res))
      res = math.floor((res - 1) / 2) + 1
      m.blocks:add(Residual(Mlp(C[i + 1], 2 * C[i + 1])))
    end
  end
  m.head = BN_Linear(C[#C], cfg.num_classes or 1000)
  if cfg.distillation ~= false then m.head_dist = BN_Linear(C[#C], cfg.num_classes or 1000) end
  function m:forward(x)
    local f = self.patch_embed(x)
    if f.shape[3] ~= res0 or f.shape[4] ~= res0 then
      nn.fail(where, string.format('attention_biases: a %dx%d grid, but the patch embedding gives %dx%d', res0, res0,
        f.shape[3], f.shape[4]))
    end
    local t = nn.mean_tokens(self.blocks(nn.tokens(f)))
    if self.head_dist then return nn.mul(self.head(t) + self.head_dist(t), 0.5) end
    return self.head(t)
  end
  return m
end

-- The number of classes from head.l.weight; the grid (img / 16) from the first attention bias table
-- (res^2 offsets).
M.from_weights = { num_classes = { key = 'head.l.weight', dim = 1 },
                   img = { key = 'blocks.0.m.attention_biases', dim = 2, root = 2, times = 16 } }

local function cfg(C, D, N, X)
  return { build = M.levit, img = 224, embed_dim = C, key_dim = D, heads = N, depth = X, input = { 1, 3, 224, 224 },
           from_weights = M.from_weights, size_key = 'img' }
end

-- timm v0.4.12's model_cfgs
M.configs = {
  levit_128s = cfg({ 128, 256, 384 }, 16, { 4, 6, 8 }, { 2, 3, 4 }),
  levit_128 = cfg({ 128, 256, 384 }, 16, { 4, 8, 12 }, { 4, 4, 4 }),
  levit_192 = cfg({ 192, 288, 384 }, 32, { 3, 5, 6 }, { 4, 4, 4 }),
  levit_256 = cfg({ 256, 384, 512 }, 32, { 4, 6, 8 }, { 4, 4, 4 }),
  levit_384 = cfg({ 384, 512, 768 }, 32, { 6, 9, 12 }, { 4, 4, 4 }),
}

return M
