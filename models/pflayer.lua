-- Parameter-free layers (Han et al., "Learning Features with Parameter-Free Layers", ICLR 2022;
-- naver-ai/PfLayer): networks whose spatial mixing is a max-pool instead of a learned operator.
--   pf_resnet50_max     ResNet-50 v1.5 whose every bottleneck 3x3 conv is MaxPool2d(3, stride, 1)
--   pf_resnet50_hybrid  same, except the first (stride-2) block of stages 2-4 keeps a conv:
--                       AvgPool2d(2, 2) then ConvBNReLU 3x3 (the "efficient" bottleneck)
--   pf_vit_s_max        ViT-S/16 without class token, whose odd-numbered blocks replace attention
--                       by the parameter-free mixer (Linear dim->3dim, GELU, 3x3 max-pool over the
--                       token grid, GELU, Linear 3dim->dim); global average of the tokens as head
--   pf_pit_s_max        PiT-S, same odd-block mixer, no class token, pooling by the depthwise conv
--                       only, global average of the final tokens as head
-- Keys as the reference code: conv1.{0,1}, layerK.N.{reduction_block,conv_block[.1],
-- expansion_block}.{0,1}, downsample.{0,1}, fc; ViT/PiT as models/pit.lua.
local nn = require 'nn'
local pit = require 'models.pit'

local M = { family = 'PfLayer' }

-- Conv (no bias) + BatchNorm (+ ReLU), children "0", "1" (and "2", parameter-free).
local function ConvBN(cin, cout, k, stride, relu)
  local m = nn.Sequential(nn.Conv2d(cin, cout, k, { stride = stride or 1, padding = math.floor((k - 1) / 2), bias = false }),
    nn.BatchNorm2d(cout))
  if relu then m:add(nn.ReLU()) end
  return m
end

-- kind: 'max' (MaxBottleneck) or 'hybrid' (EffBottleneck).
local function Bottleneck(kind, inplanes, planes, stride, downsample)
  local m = nn.Module('Bottleneck')
  m.reduction_block = ConvBN(inplanes, planes, 1, 1, true)
  if kind == 'hybrid' and stride == 2 then
    m.conv_block = nn.Sequential(nn.AvgPool2d(2, { stride = 2 }), ConvBN(planes, planes, 3, 1, true))
  else
    m.conv_block = nn.MaxPool2d(3, { stride = stride, padding = 1 })
  end
  m.expansion_block = ConvBN(planes, planes * 4, 1, 1, false)
  m.relu = nn.ReLU()
  if downsample then m.downsample = downsample end
  function m:forward(x)
    local out = self.expansion_block(self.conv_block(self.reduction_block(x)))
    local identity = self.downsample and self.downsample(x) or x
    return self.relu(out + identity)
  end
  return m
end

-- resnet{kind='max'|'hybrid', width=64, layers={3,4,6,3}, num_classes=1000}
function M.resnet(cfg)
  local kind = cfg.kind
  if kind ~= 'max' and kind ~= 'hybrid' then nn.fail(nn.caller_where(), 'PfLayer resnet kind must be max or hybrid') end
  local width = cfg.width or 64
  local m = nn.Module('PfResNet')
  m.conv1 = ConvBN(3, width, 7, 2, true)
  m.maxpool = nn.MaxPool2d(3, { stride = 2, padding = 1 })
  local inplanes = width
  for i, count in ipairs(cfg.layers or { 3, 4, 6, 3 }) do
    local planes, stride = width * 2 ^ (i - 1), i == 1 and 1 or 2
    local layer = nn.Sequential()
    for b = 1, count do
      local s = b == 1 and stride or 1
      local downsample
      if b == 1 and (s ~= 1 or inplanes ~= planes * 4) then
        downsample = ConvBN(inplanes, planes * 4, 1, s, false)
      end
      layer:add(Bottleneck(kind, inplanes, planes, s, downsample))
      inplanes = planes * 4
    end
    m['layer' .. i] = layer
  end
  m.avgpool = nn.AdaptiveAvgPool2d(1)
  m.fc = nn.Linear(inplanes, cfg.num_classes or 1000)
  function m:forward(x)
    x = self.maxpool(self.conv1(x))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(nn.flatten(self.avgpool(x), 1))
  end
  return m
end

-- The weights determine the number of classes (the ResNets' fc.weight; the transformers' as in pit.lua).
M.from_weights = { num_classes = { key = 'fc.weight', dim = 1 } }

M.configs = {
  pf_resnet50_max = { build = M.resnet, kind = 'max', input = { 1, 3, 224, 224 } },
  pf_resnet50_hybrid = { build = M.resnet, kind = 'hybrid', input = { 1, 3, 224, 224 } },
  pf_vit_s_max = { build = pit.vit, img = 224, patch = 16, dim = 384, depth = 12, heads = 6, mlp_ratio = 4,
                   mixer = 'max', cls_tokens = 0, input = { 1, 3, 224, 224 }, from_weights = pit.vit_from_weights,
                   size_key = 'img', resample_pos_embed = 'none' },
  pf_pit_s_max = { build = pit.pit, img = 224, patch = 16, stride = 8, base_dims = { 48, 48, 48 }, depth = { 2, 6, 4 },
                   heads = { 3, 6, 12 }, mlp_ratio = 4, mixer = 'max', cls_tokens = 0, input = { 1, 3, 224, 224 },
                   from_weights = pit.pit_from_weights, size_key = 'img', resample_pos_embed = 'none' },
}

return M
