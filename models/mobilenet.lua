-- MobileNetV2 (Sandler et al., "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018)
-- and MobileNetV3 (Howard et al., "Searching for MobileNetV3", ICCV 2019), as torchvision 0.14's
-- mobilenetv2.py / mobilenetv3.py define them, with their state_dict keys. An inverted residual:
-- an optional 1x1 expansion, a depthwise kxk, (V3: squeeze-excitation with a Hardsigmoid gate), a
-- linear 1x1 projection, plus the input when the stride is 1 and the widths agree; activations
-- ReLU6 (V2), ReLU or Hardswish (V3). Conv2dNormActivation blocks are `N.0` conv (no bias), `N.1`
-- BatchNorm (eps 1e-5 in V2, 1e-3 in V3). Widths are torchvision's _make_divisible(c * width_mult, 8).
local nn = require 'nn'

local M = { family = 'MobileNet' }

M.from_weights = { num_classes = { key = 'classifier.1.weight', dim = 1 } }
M.v3_from_weights = { num_classes = { key = 'classifier.3.weight', dim = 1 } }

local divisible = nn.make_divisible -- torchvision's _make_divisible(v, 8)

-- MobileNetV2's InvertedResidual: conv = Sequential(expand?, depthwise, project conv, project BN).
local function InvertedResidualV2(cin, cout, stride, t)
  local m = nn.Module('InvertedResidual')
  local hidden = math.floor(cin * t + 0.5)
  m.conv = nn.Sequential()
  if t ~= 1 then m.conv:add(nn.Conv2dNormActivation(cin, hidden, 1, { act = 'relu6' })) end
  m.conv:add(nn.Conv2dNormActivation(hidden, hidden, 3, { stride = stride, groups = hidden, act = 'relu6' }))
  m.conv:add(nn.Conv2d(hidden, cout, 1, { bias = false }))
  m.conv:add(nn.BatchNorm2d(cout))
  local residual = stride == 1 and cin == cout
  function m:forward(x)
    local y = self.conv(x)
    return residual and x + y or y
  end
  return m
end

-- mobilenet_v2{width_mult = 1, num_classes = 1000}
function M.mobilenet_v2(cfg)
  local wm = cfg.width_mult or 1
  local m = nn.Module('MobileNetV2')
  local cin, last = divisible(32 * wm), divisible(1280 * math.max(1, wm))
  m.features = nn.Sequential()
  m.features:add(nn.Conv2dNormActivation(3, cin, 3, { stride = 2, act = 'relu6' }))
  for _, r in ipairs({ { 1, 16, 1, 1 }, { 6, 24, 2, 2 }, { 6, 32, 3, 2 }, { 6, 64, 4, 2 }, { 6, 96, 3, 1 },
                       { 6, 160, 3, 2 }, { 6, 320, 1, 1 } }) do
    local cout = divisible(r[2] * wm)
    for i = 1, r[3] do
      m.features:add(InvertedResidualV2(cin, cout, i == 1 and r[4] or 1, r[1]))
      cin = cout
    end
  end
  m.features:add(nn.Conv2dNormActivation(cin, last, 1, { act = 'relu6' }))
  m.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last, cfg.num_classes or 1000))
  function m:forward(x)
    return self.classifier(nn.flatten(nn.adaptive_avg_pool2d(self.features(x), 1), 1))
  end
  return m
end

-- MobileNetV3's InvertedResidual: block = Sequential(expand?, depthwise, SE?, project).
local function InvertedResidualV3(c)
  local m = nn.Module('InvertedResidual')
  local act = c.hs and 'hardswish' or 'relu'
  m.block = nn.Sequential()
  if c.exp ~= c.cin then m.block:add(nn.Conv2dNormActivation(c.cin, c.exp, 1, { eps = 1e-3, act = act })) end
  m.block:add(nn.Conv2dNormActivation(c.exp, c.exp, c.k, { stride = c.stride, groups = c.exp, eps = 1e-3, act = act }))
  if c.se then
    m.block:add(nn.SqueezeExcitation(c.exp, divisible(math.floor(c.exp / 4)), { scale_activation = 'hardsigmoid' }))
  end
  m.block:add(nn.Conv2dNormActivation(c.exp, c.cout, 1, { eps = 1e-3 }))
  local residual = c.stride == 1 and c.cin == c.cout
  function m:forward(x)
    local y = self.block(x)
    return residual and x + y or y
  end
  return m
end

-- torchvision's bneck configurations: input, kernel, expanded, output, SE, Hardswish, stride.
local V3 = {
  large = { last = 1280, blocks = {
    { 16, 3, 16, 16, false, false, 1 }, { 16, 3, 64, 24, false, false, 2 }, { 24, 3, 72, 24, false, false, 1 },
    { 24, 5, 72, 40, true, false, 2 }, { 40, 5, 120, 40, true, false, 1 }, { 40, 5, 120, 40, true, false, 1 },
    { 40, 3, 240, 80, false, true, 2 }, { 80, 3, 200, 80, false, true, 1 }, { 80, 3, 184, 80, false, true, 1 },
    { 80, 3, 184, 80, false, true, 1 }, { 80, 3, 480, 112, true, true, 1 }, { 112, 3, 672, 112, true, true, 1 },
    { 112, 5, 672, 160, true, true, 2 }, { 160, 5, 960, 160, true, true, 1 }, { 160, 5, 960, 160, true, true, 1 } } },
  small = { last = 1024, blocks = {
    { 16, 3, 16, 16, true, false, 2 }, { 16, 3, 72, 24, false, false, 2 }, { 24, 3, 88, 24, false, false, 1 },
    { 24, 5, 96, 40, true, true, 2 }, { 40, 5, 240, 40, true, true, 1 }, { 40, 5, 240, 40, true, true, 1 },
    { 40, 5, 120, 48, true, true, 1 }, { 48, 5, 144, 48, true, true, 1 }, { 48, 5, 288, 96, true, true, 2 },
    { 96, 5, 576, 96, true, true, 1 }, { 96, 5, 576, 96, true, true, 1 } } },
}

-- mobilenet_v3{arch = 'large' | 'small', width_mult = 1, num_classes = 1000}
function M.mobilenet_v3(cfg)
  local arch = V3[cfg.arch] or nn.fail(nn.caller_where(), 'mobilenet_v3 arch must be large or small')
  local wm = cfg.width_mult or 1
  local m = nn.Module('MobileNetV3')
  local blocks = {}
  for i, b in ipairs(arch.blocks) do
    blocks[i] = { cin = divisible(b[1] * wm), k = b[2], exp = divisible(b[3] * wm), cout = divisible(b[4] * wm),
                  se = b[5], hs = b[6], stride = b[7] }
  end
  m.features = nn.Sequential()
  m.features:add(nn.Conv2dNormActivation(3, blocks[1].cin, 3, { stride = 2, eps = 1e-3, act = 'hardswish' }))
  for _, c in ipairs(blocks) do m.features:add(InvertedResidualV3(c)) end
  local cin = blocks[#blocks].cout
  m.features:add(nn.Conv2dNormActivation(cin, 6 * cin, 1, { eps = 1e-3, act = 'hardswish' }))
  local last = divisible(arch.last * wm)
  m.classifier = nn.Sequential(nn.Linear(6 * cin, last), nn.Hardswish(), nn.Dropout(0.2),
    nn.Linear(last, cfg.num_classes or 1000))
  function m:forward(x)
    return self.classifier(nn.flatten(nn.adaptive_avg_pool2d(self.features(x), 1), 1))
  end
  return m
end

M.configs = {
  mobilenet_v2 = { build = M.mobilenet_v2, input = { 1, 3, 224, 224 } },
  mobilenet_v3_large = { build = M.mobilenet_v3, arch = 'large', input = { 1, 3, 224, 224 },
                         from_weights = M.v3_from_weights },
  mobilenet_v3_small = { build = M.mobilenet_v3, arch = 'small', input = { 1, 3, 224, 224 },
                         from_weights = M.v3_from_weights },
}

return M
