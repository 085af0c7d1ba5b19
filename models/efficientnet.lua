-- EfficientNet B0-B7 (Tan & Le, "EfficientNet: Rethinking Model Scaling for Convolutional Neural
-- Networks", ICML 2019), as torchvision 0.14's efficientnet.py defines them, with its state_dict
-- keys: a 3x3/2 stem (Conv2dNormActivation: `.0` conv, `.1` BatchNorm, SiLU), stages of MBConv blocks
-- (`block`: a 1x1 expansion when the ratio is not 1, a depthwise kxk, squeeze-excitation with SiLU and
-- a sigmoid gate to max(1, input channels / 4), a linear 1x1 projection; plus the input when the
-- stride is 1 and the widths agree, stochastic depth being the identity at inference), a 1x1 to 4x
-- the last width, global average pool, dropout, Linear. Widths are _make_divisible(c * width_mult,
-- 8), depths ceil(n * depth_mult); BatchNorm eps 1e-5 (B0-B4) or 1e-3 (B5-B7).
local nn = require 'nn'

local M = { family = 'EfficientNet' }

M.from_weights = { num_classes = { key = 'classifier.1.weight', dim = 1 } }

local divisible = nn.make_divisible -- torchvision's _make_divisible(v, 8)

local function MBConv(cin, cout, k, stride, ratio, eps)
  local m = nn.Module('MBConv')
  local exp = divisible(cin * ratio)
  m.block = nn.Sequential()
  if exp ~= cin then m.block:add(nn.Conv2dNormActivation(cin, exp, 1, { eps = eps, act = 'silu' })) end
  m.block:add(nn.Conv2dNormActivation(exp, exp, k, { stride = stride, groups = exp, eps = eps, act = 'silu' }))
  m.block:add(nn.SqueezeExcitation(exp, math.max(1, math.floor(cin / 4)), { activation = 'silu' }))
  m.block:add(nn.Conv2dNormActivation(exp, cout, 1, { eps = eps }))
  local residual = stride == 1 and cin == cout
  function m:forward(x)
    local y = self.block(x)
    return residual and x + y or y
  end
  return m
end

-- efficientnet{width_mult, depth_mult, eps = 1e-5, num_classes = 1000}
function M.efficientnet(cfg)
  local wm, dm, eps = cfg.width_mult, cfg.depth_mult, cfg.eps or 1e-5
  local m = nn.Module('EfficientNet')
  m.features = nn.Sequential()
  local cin = divisible(32 * wm)
  m.features:add(nn.Conv2dNormActivation(3, cin, 3, { stride = 2, eps = eps, act = 'silu' }))
  -- expand ratio, kernel, stride, input, output, layers (torchvision's bneck_conf for B0)
  for _, r in ipairs({ { 1, 3, 1, 32, 16, 1 }, { 6, 3, 2, 16, 24, 2 }, { 6, 5, 2, 24, 40, 2 }, { 6, 3, 2, 40, 80, 3 },
                       { 6, 5, 1, 80, 112, 3 }, { 6, 5, 2, 112, 192, 4 }, { 6, 3, 1, 192, 320, 1 } }) do
    local cout = divisible(r[5] * wm)
    local stage = nn.Sequential()
    for i = 1, math.ceil(r[6] * dm - 1e-9) do
      stage:add(MBConv(cin, cout, r[2], i == 1 and r[3] or 1, r[1], eps))
      cin = cout
    end
    m.features:add(stage)
  end
  m.features:add(nn.Conv2dNormActivation(cin, 4 * cin, 1, { eps = eps, act = 'silu' }))
  m.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * cin, cfg.num_classes or 1000))
  function m:forward(x)
    return self.classifier(nn.flatten(nn.adaptive_avg_pool2d(self.features(x), 1), 1))
  end
  return m
end

local function cfg(wm, dm, size, eps)
  return { build = M.efficientnet, width_mult = wm, depth_mult = dm, eps = eps, input = { 1, 3, size, size } }
end

-- torchvision's input sizes (its weights' transforms: crop 224, 240, 288, 300, 380, 456, 528, 600)
M.configs = {
  efficientnet_b0 = cfg(1.0, 1.0, 224),
  efficientnet_b1 = cfg(1.0, 1.1, 240),
  efficientnet_b2 = cfg(1.1, 1.2, 288),
  efficientnet_b3 = cfg(1.2, 1.4, 300),
  efficientnet_b4 = cfg(1.4, 1.8, 380),
  efficientnet_b5 = cfg(1.6, 2.2, 456, 1e-3),
  efficientnet_b6 = cfg(1.8, 2.6, 528, 1e-3),
  efficientnet_b7 = cfg(2.0, 3.1, 600, 1e-3),
}

return M
