-- VGG (Simonyan & Zisserman, "Very Deep Convolutional Networks for Large-Scale Image Recognition",
-- ICLR 2015), as torchvision 0.14 defines it, with and without BatchNorm (vgg11..19, vgg11_bn..19_bn),
-- with torchvision's state_dict keys: features.N (conv, [BN,] ReLU and max-pool in one Sequential, so
-- indices count the stateless layers too), classifier.{0,3,6}. AdaptiveAvgPool2d((7, 7)) is a view at
-- 224x224 (the map is 7x7) and folds into classifier.0 on smaller inputs
-- (compiler/passes/fold_adaptive_pool.lua); Dropout is the identity.
local nn = require 'nn'

local M = { family = 'VGG' }

M.from_weights = { num_classes = { key = 'classifier.6.weight', dim = 1 } }

-- torchvision's cfgs: channels of each 3x3 conv, 'M' a 2x2 max-pool.
local layouts = {
  [11] = { 64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M' },
  [13] = { 64, 64, 'M', 128, 128, 'M', 256, 256, 'M', 512, 512, 'M', 512, 512, 'M' },
  [16] = { 64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512, 'M', 512, 512, 512, 'M' },
  [19] = { 64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M', 512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M' },
}

-- vgg{depth=11|13|16|19, batch_norm=false, width=64 (conv channels scale by width/64),
-- hidden=4096, num_classes=1000}: the model.
function M.vgg(cfg)
  local layout = layouts[cfg.depth] or nn.fail(nn.caller_where(), 'vgg depth must be 11, 13, 16 or 19')
  local scale, hidden = (cfg.width or 64) / 64, cfg.hidden or 4096
  local features = nn.Sequential()
  local cin = 3
  for _, v in ipairs(layout) do
    if v == 'M' then
      features:add(nn.MaxPool2d(2, { stride = 2 }))
    else
      local cout = v * scale
      features:add(nn.Conv2d(cin, cout, 3, { padding = 1 }))
      if cfg.batch_norm then features:add(nn.BatchNorm2d(cout)) end
      features:add(nn.ReLU())
      cin = cout
    end
  end
  local m = nn.Module('VGG')
  m.features = features
  m.avgpool = nn.AdaptiveAvgPool2d({ 7, 7 })
  m.classifier = nn.Sequential(
    nn.Linear(cin * 7 * 7, hidden), nn.ReLU(), nn.Dropout(0.5),
    nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(0.5),
    nn.Linear(hidden, cfg.num_classes or 1000))
  function m:forward(x)
    return self.classifier(nn.flatten(self.avgpool(self.features(x)), 1))
  end
  return m
end

M.configs = {}
for _, depth in ipairs({ 11, 13, 16, 19 }) do
  M.configs['vgg' .. depth] = { build = M.vgg, depth = depth, input = { 1, 3, 224, 224 } }
  M.configs['vgg' .. depth .. '_bn'] = { build = M.vgg, depth = depth, batch_norm = true, input = { 1, 3, 224, 224 } }
end

return M
