-- DenseNet (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017), DenseNet-BC as
-- torchvision 0.14 defines it, with its state_dict keys: features.{conv0,norm0},
-- features.denseblockB.denselayerL.{norm1,conv1,norm2,conv2}, features.transitionB.{norm,conv},
-- features.norm5, classifier. Each dense layer reads the concatenation of the block's input and every
-- earlier layer's output (pre-activation: BN, ReLU, 1x1 conv to bn_size * growth_rate, BN, ReLU, 3x3
-- conv to growth_rate); a transition halves channels (BN, ReLU, 1x1 conv) and the map (2x2 average
-- pool). The concatenations cost no copy (ops/concat.lua): every layer writes its growth_rate
-- channels into the block's buffer, and each layer's input is a prefix of it. Dropout
-- (drop_rate) is the identity at inference.
local nn = require 'nn'

local M = { family = 'DenseNet' }

M.from_weights = { num_classes = { key = 'classifier.weight', dim = 1 } }

local function DenseLayer(cin, growth_rate, bn_size)
  local m = nn.Module('_DenseLayer')
  m.norm1 = nn.BatchNorm2d(cin)
  m.relu1 = nn.ReLU()
  m.conv1 = nn.Conv2d(cin, bn_size * growth_rate, 1, { bias = false })
  m.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
  m.relu2 = nn.ReLU()
  m.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, { padding = 1, bias = false })
  -- features: the list of the block's maps so far
  function m:forward(features)
    local x = self.conv1(self.relu1(self.norm1(nn.cat(features, 1))))
    return self.conv2(self.relu2(self.norm2(x)))
  end
  return m
end

local function DenseBlock(layers, cin, bn_size, growth_rate)
  local m = nn.Module('_DenseBlock')
  for i = 1, layers do
    m:add('denselayer' .. i, DenseLayer(cin + (i - 1) * growth_rate, growth_rate, bn_size))
  end
  function m:forward(x)
    local features = { x }
    for _, layer in self:children() do features[#features + 1] = layer(features) end
    return nn.cat(features, 1)
  end
  return m
end

local function Transition(cin, cout)
  local m = nn.Sequential()
  m:add('norm', nn.BatchNorm2d(cin))
  m:add('relu', nn.ReLU())
  m:add('conv', nn.Conv2d(cin, cout, 1, { bias = false }))
  m:add('pool', nn.AvgPool2d(2, { stride = 2 }))
  return m
end

-- densenet{growth_rate=32, block_config={6, 12, 24, 16}, num_init_features=64, bn_size=4,
-- num_classes=1000}: the model.
function M.densenet(cfg)
  local growth, blocks = cfg.growth_rate or 32, cfg.block_config or { 6, 12, 24, 16 }
  local init, bn_size = cfg.num_init_features or 64, cfg.bn_size or 4
  local features = nn.Sequential()
  features:add('conv0', nn.Conv2d(3, init, 7, { stride = 2, padding = 3, bias = false }))
  features:add('norm0', nn.BatchNorm2d(init))
  features:add('relu0', nn.ReLU())
  features:add('pool0', nn.MaxPool2d(3, { stride = 2, padding = 1 }))
  local c = init
  for i, layers in ipairs(blocks) do
    features:add('denseblock' .. i, DenseBlock(layers, c, bn_size, growth))
    c = c + layers * growth
    if i ~= #blocks then
      features:add('transition' .. i, Transition(c, math.floor(c / 2)))
      c = math.floor(c / 2)
    end
  end
  features:add('norm5', nn.BatchNorm2d(c))
  local m = nn.Module('DenseNet')
  m.features = features
  m.classifier = nn.Linear(c, cfg.num_classes or 1000)
  function m:forward(x)
    local out = nn.relu(self.features(x))
    return self.classifier(nn.flatten(nn.adaptive_avg_pool2d(out, 1), 1))
  end
  return m
end

M.configs = {
  densenet121 = { build = M.densenet, block_config = { 6, 12, 24, 16 }, input = { 1, 3, 224, 224 } },
  densenet161 = { build = M.densenet, growth_rate = 48, block_config = { 6, 12, 36, 24 }, num_init_features = 96,
                  input = { 1, 3, 224, 224 } },
  densenet169 = { build = M.densenet, block_config = { 6, 12, 32, 32 }, input = { 1, 3, 224, 224 } },
  densenet201 = { build = M.densenet, block_config = { 6, 12, 48, 32 }, input = { 1, 3, 224, 224 } },
}

return M
