-- ConvNeXt (Liu et al., "A ConvNet for the 2020s", CVPR 2022), as torchvision 0.14's convnext.py
-- defines it, with its state_dict keys: features.0 the stem (4x4 stride-4 conv, LayerNorm2d), then
-- per stage a Sequential of CNBlocks and, between stages, a downsampling Sequential (LayerNorm2d,
-- 2x2 stride-2 conv); avgpool; classifier (LayerNorm2d, Flatten, Linear). A CNBlock is
--   y = x + layer_scale * Linear2(GELU(Linear1(LayerNorm(dwconv7x7(x)))))
-- with the LayerNorm and Linears over the channels of each pixel (block.0, .2, .3, .5; block.1 and .6
-- are Permutes) and layer_scale [C, 1, 1] folded into Linear2 (passes/fold_bn.lua); stochastic depth
-- is the identity at inference. In foldc's channels-innermost layout the permutes are views.
local nn = require 'nn'

local M = { family = 'ConvNeXt' }

local function CNBlock(dim)
  local m = nn.Module('CNBlock')
  m:param('layer_scale', { dim, 1, 1 })
  m.block = nn.Module('Sequential')
  m.block:add('0', nn.Conv2d(dim, dim, 7, { padding = 3, groups = dim }))
  m.block:add('2', nn.LayerNorm(dim, { eps = 1e-6 }))
  m.block:add('3', nn.Linear(dim, 4 * dim))
  m.block:add('5', nn.Linear(4 * dim, dim))
  function m:forward(x)
    local b = self.block
    local h, w = x.shape[3], x.shape[4]
    local t = b['5'](nn.gelu(b['3'](b['2'](nn.tokens(b['0'](x))))))
    return x + nn.token_map(nn.scale_channels(t, self, 'layer_scale'), h, w)
  end
  return m
end

-- convnext{dims = {96, 192, 384, 768}, depths = {3, 3, 9, 3}, num_classes = 1000}
function M.convnext(cfg)
  local m = nn.Module('ConvNeXt')
  local dims, depths = cfg.dims, cfg.depths
  m.features = nn.Sequential()
  m.features:add(nn.Sequential(nn.Conv2d(3, dims[1], 4, { stride = 4 }), nn.LayerNorm2d(dims[1], { eps = 1e-6 })))
  for s = 1, #dims do
    local stage = nn.Sequential()
    for _ = 1, depths[s] do stage:add(CNBlock(dims[s])) end
    m.features:add(stage)
    if s < #dims then
      m.features:add(nn.Sequential(nn.LayerNorm2d(dims[s], { eps = 1e-6 }),
        nn.Conv2d(dims[s], dims[s + 1], 2, { stride = 2 })))
    end
  end
  m.avgpool = nn.AdaptiveAvgPool2d(1)
  m.classifier = nn.Sequential(nn.LayerNorm2d(dims[#dims], { eps = 1e-6 }), nn.Flatten(),
    nn.Linear(dims[#dims], cfg.num_classes or 1000))
  function m:forward(x)
    return self.classifier(self.avgpool(self.features(x)))
  end
  return m
end

M.from_weights = { num_classes = { key = 'classifier.2.weight', dim = 1 } }

local function cfg(dims, depths)
  return { build = M.convnext, dims = dims, depths = depths, input = { 1, 3, 224, 224 } }
end

M.configs = {
  convnext_tiny = cfg({ 96, 192, 384, 768 }, { 3, 3, 9, 3 }),
  convnext_small = cfg({ 96, 192, 384, 768 }, { 3, 3, 27, 3 }),
  convnext_base = cfg({ 128, 256, 512, 1024 }, { 3, 3, 27, 3 }),
  convnext_large = cfg({ 192, 384, 768, 1536 }, { 3, 3, 27, 3 }),
}

return M
