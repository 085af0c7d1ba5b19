-- MaxViT (Tu et al., "MaxViT: Multi-Axis Vision Transformer", ECCV 2022), as torchvision 0.14's
-- maxvit.py defines it, with its state_dict keys:
--   stem         Conv2dNormActivation 3x3/2 (conv without bias, BatchNorm eps 1e-3, GELU), then a
--                3x3 conv with bias (stem.1.0)
--   blocks.S.layers.L.layers.{MBconv, window_attention, grid_attention}
--     MBconv     y = proj(x) + conv_c(SE(conv_b(conv_a(pre_norm(x)))))  (MBConv, Sandler et al. 2018;
--                pre_norm BatchNorm; conv_a 1x1 to 4x with BN and GELU; conv_b depthwise 3x3 (stride 2
--                in a block's first layer) with BN and GELU; squeeze-excitation to C/4 with SiLU and a
--                sigmoid gate; conv_c 1x1 with bias); proj: AvgPool2d(3, 2, 1) then a 1x1 conv with
--                bias (proj.1) when the layer downsamples, a 1x1 conv (proj.0) when only the width
--                changes, else the identity
--     window_attention / grid_attention: PartitionAttentionLayer over tokens [1, H W, C]
--                x = x + merge(attention(to_qkv(LayerNorm(x))))     (attn_layer.0, .1)
--                x = x + Linear(GELU(Linear(LayerNorm(x))))        (mlp_layer.0, .1, .3)
--                attention with heads C / head_dim, scores q k^T C^-0.5 (torchvision scales k by
--                feat_dim^-0.5, C, not head_dim) plus the relative position bias
--                relative_position_bias_table[relative_position_index[i, j], h], over the P x P
--                windows of the map ("window": block attention) or over the P x P grids of tokens
--                H / P apart ("grid": grid attention); every other step is per token, so the map
--                stays in its row-major token order and only the attention sees the partition
--   classifier   AdaptiveAvgPool2d(1), Flatten, LayerNorm, Linear, Tanh, Linear without bias
-- Stochastic depth and dropout are the identity at inference. Every stage halves the map, and the
-- map at every stage must split into P x P windows (torchvision's own check; grid attention also
-- needs a square map, as torchvision's single n_partitions does).
local nn = require 'nn'

local M = { family = 'MaxViT' }

M.from_weights = { num_classes = { key = 'classifier.5.weight', dim = 1 } }

local BN_EPS = 1e-3

local function MBConv(cin, cout, stride, expansion, squeeze)
  local m = nn.Module('MBConv')
  local mid, sqz = math.floor(cout * expansion), math.floor(cout * squeeze)
  if stride ~= 1 or cin ~= cout then
    m.proj = nn.Sequential()
    if stride == 2 then m.proj:add(nn.AvgPool2d(3, { stride = 2, padding = 1 })) end
    m.proj:add(nn.Conv2d(cin, cout, 1))
  end
  m.layers = nn.Module('Sequential')
  m.layers:add('pre_norm', nn.BatchNorm2d(cin, { eps = BN_EPS }))
  m.layers:add('conv_a', nn.Conv2dNormActivation(cin, mid, 1, { eps = BN_EPS, act = 'gelu' }))
  m.layers:add('conv_b', nn.Conv2dNormActivation(mid, mid, 3, { stride = stride, groups = mid, eps = BN_EPS, act = 'gelu' }))
  m.layers:add('squeeze_excitation', nn.SqueezeExcitation(mid, sqz, { activation = 'silu' }))
  m.layers:add('conv_c', nn.Conv2d(mid, cout, 1))
  function m:forward(x)
    local l = self.layers
    local y = l.conv_c(l.squeeze_excitation(l.conv_b(l.conv_a(l.pre_norm(x)))))
    return (self.proj and self.proj(x) or x) + y
  end
  return m
end

-- torchvision's RelativePositionalMultiHeadAttention on tokens [1, H W, C] of an h x w map: to_qkv,
-- the partitioned attention with the relative position bias, merge.
local function RelAttention(dim, head_dim, p, kind)
  local m = nn.Module('RelativePositionalMultiHeadAttention')
  local heads = math.floor(dim / head_dim)
  if heads * head_dim ~= dim then
    nn.fail(m._where, string.format('feat_dim %d is not divisible by head_dim %d', dim, head_dim))
  end
  m:param('relative_position_bias_table', { (2 * p - 1) * (2 * p - 1), heads })
  m:param('relative_position_index', { p * p, p * p }, { buffer = true, dtype = 'I64', optional = true })
  m.to_qkv = nn.Linear(dim, 3 * dim)
  m.merge = nn.Linear(dim, dim)
  function m:forward(t, h, w)
    local where = nn.caller_where()
    if h % p ~= 0 or w % p ~= 0 or (kind == 'grid' and h ~= w) then
      nn.fail(where, string.format('%s: a %dx%d map does not split into %dx%d %ss%s', self._path, h, w, p, p, kind,
        kind == 'grid' and h ~= w and ' (grid attention needs a square map, as torchvision\'s)' or ''))
    end
    local dilation = kind == 'grid' and h / p or 1
    return self.merge(nn.window_attention(self.to_qkv(t), heads, {
      map = { h, w }, window = { p, p }, dilation = { dilation, dilation }, scale = dim ^ -0.5,
      bias = { self, 'relative_position_bias_table' } }))
  end
  return m
end

local function PartitionAttention(dim, head_dim, p, kind, mlp_ratio)
  local m = nn.Module('PartitionAttentionLayer')
  m.attn_layer = nn.Module('Sequential')
  m.attn_layer:add('0', nn.LayerNorm(dim))
  m.attn_layer:add('1', RelAttention(dim, head_dim, p, kind))
  m.mlp_layer = nn.Module('Sequential')
  m.mlp_layer:add('0', nn.LayerNorm(dim))
  m.mlp_layer:add('1', nn.Linear(dim, dim * mlp_ratio))
  m.mlp_layer:add('3', nn.Linear(dim * mlp_ratio, dim))
  function m:forward(t, h, w)
    local a, f = self.attn_layer, self.mlp_layer
    t = t + a['1'](a['0'](t), h, w)
    return t + f['3'](nn.gelu(f['1'](f['0'](t))))
  end
  return m
end

local function MaxVitLayer(cin, cout, stride, cfg)
  local m = nn.Module('MaxVitLayer')
  local p, hd, r = cfg.partition_size, cfg.head_dim, cfg.mlp_ratio or 4
  m.layers = nn.Module('Sequential')
  m.layers:add('MBconv', MBConv(cin, cout, stride, cfg.expansion_ratio or 4, cfg.squeeze_ratio or 0.25))
  m.layers:add('window_attention', PartitionAttention(cout, hd, p, 'window', r))
  m.layers:add('grid_attention', PartitionAttention(cout, hd, p, 'grid', r))
  function m:forward(x)
    local l = self.layers
    x = l.MBconv(x)
    local h, w = x.shape[3], x.shape[4]
    local t = l.grid_attention(l.window_attention(nn.tokens(x), h, w), h, w)
    return nn.token_map(t, h, w)
  end
  return m
end

-- maxvit{stem_channels = 64, block_channels = {64, 128, 256, 512}, block_layers = {2, 2, 5, 2},
--        head_dim = 32, partition_size = 7, expansion_ratio = 4, squeeze_ratio = 0.25, mlp_ratio = 4,
--        num_classes = 1000}
function M.maxvit(cfg)
  local m = nn.Module('MaxVit')
  local stem = cfg.stem_channels
  m.stem = nn.Sequential(
    nn.Conv2dNormActivation(3, stem, 3, { stride = 2, eps = BN_EPS, act = 'gelu' }),
    nn.Sequential(nn.Conv2d(stem, stem, 3, { padding = 1 })))
  m.blocks = nn.Module('ModuleList')
  local cin = stem
  for s, cout in ipairs(cfg.block_channels) do
    local block = nn.Module('MaxVitBlock')
    block.layers = nn.Module('ModuleList')
    for i = 1, cfg.block_layers[s] do
      block.layers:add(MaxVitLayer(i == 1 and cin or cout, cout, i == 1 and 2 or 1, cfg))
    end
    m.blocks:add(block)
    cin = cout
  end
  m.classifier = nn.Module('Sequential')
  m.classifier:add('2', nn.LayerNorm(cin))
  m.classifier:add('3', nn.Linear(cin, cin))
  m.classifier:add('5', nn.Linear(cin, cfg.num_classes or 1000, { bias = false }))
  function m:forward(x)
    x = self.stem(x)
    for _, block in self.blocks:children() do
      for _, layer in block.layers:children() do x = layer(x) end
    end
    local c = self.classifier
    return c['5'](nn.tanh(c['3'](c['2'](nn.flatten(nn.adaptive_avg_pool2d(x, 1), 1)))))
  end
  return m
end

M.configs = {
  maxvit_t = { build = M.maxvit, stem_channels = 64, block_channels = { 64, 128, 256, 512 }, block_layers = { 2, 2, 5, 2 },
               head_dim = 32, partition_size = 7, input = { 1, 3, 224, 224 } },
}

return M
