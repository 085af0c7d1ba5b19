-- RegNetX / RegNetY (Radosavovic et al., "Designing Network Design Spaces", CVPR 2020), as
-- torchvision 0.14's regnet.py defines them, with its state_dict keys: stem (Conv2dNormActivation
-- 3x3/2 to 32, ReLU), trunk_output.blockS.blockS-I (ResBottleneckBlock: proj, a 1x1 conv + BN, when the
-- width or stride changes; f = a (1x1, ReLU), b (3x3 grouped conv of group_width channels a group,
-- stride in the first block of a stage, ReLU), se (RegNetY: squeeze-excitation to round(0.25 x the
-- block's input width), ReLU, sigmoid gate), c (1x1, no activation); ReLU after the add), avgpool,
-- fc. The stage depths, widths and group widths are torchvision's BlockParams.from_init_params for
-- each model (its quantised width progression), listed per config.
local nn = require 'nn'

local M = { family = 'RegNet' }

M.from_weights = { num_classes = { key = 'fc.weight', dim = 1 } }

local function ResBottleneckBlock(cin, cout, stride, group_width, se_ratio)
  local m = nn.Module('ResBottleneckBlock')
  if cin ~= cout or stride ~= 1 then m.proj = nn.Conv2dNormActivation(cin, cout, 1, { stride = stride }) end
  m.f = nn.Sequential()
  m.f:add('a', nn.Conv2dNormActivation(cin, cout, 1, { act = 'relu' }))
  m.f:add('b', nn.Conv2dNormActivation(cout, cout, 3, { stride = stride, groups = cout / group_width, act = 'relu' }))
  if se_ratio then m.f:add('se', nn.SqueezeExcitation(cout, math.floor(se_ratio * cin + 0.5))) end
  m.f:add('c', nn.Conv2dNormActivation(cout, cout, 1))
  function m:forward(x)
    return nn.relu((self.proj and self.proj(x) or x) + self.f(x))
  end
  return m
end

-- regnet{depths, widths, group_widths (per stage), se_ratio (RegNetY: 0.25), num_classes = 1000}
function M.regnet(cfg)
  local m = nn.Module('RegNet')
  m.stem = nn.Conv2dNormActivation(3, 32, 3, { stride = 2, act = 'relu' })
  m.trunk_output = nn.Sequential()
  local cin = 32
  for s, depth in ipairs(cfg.depths) do
    local stage = nn.Sequential()
    for i = 0, depth - 1 do
      stage:add(string.format('block%d-%d', s, i),
        ResBottleneckBlock(cin, cfg.widths[s], i == 0 and 2 or 1, cfg.group_widths[s], cfg.se_ratio))
      cin = cfg.widths[s]
    end
    m.trunk_output:add('block' .. s, stage)
  end
  m.fc = nn.Linear(cin, cfg.num_classes or 1000)
  function m:forward(x)
    return self.fc(nn.flatten(nn.adaptive_avg_pool2d(self.trunk_output(self.stem(x)), 1), 1))
  end
  return m
end

local function cfg(depths, widths, g, se)
  return { build = M.regnet, depths = depths, widths = widths, group_widths = { g, g, g, g }, se_ratio = se,
           input = { 1, 3, 224, 224 } }
end

M.configs = {
  regnet_y_400mf = cfg({ 1, 3, 6, 6 }, { 48, 104, 208, 440 }, 8, 0.25),
  regnet_y_800mf = cfg({ 1, 3, 8, 2 }, { 64, 144, 320, 784 }, 16, 0.25),
  regnet_y_1_6gf = cfg({ 2, 6, 17, 2 }, { 48, 120, 336, 888 }, 24, 0.25),
  regnet_y_3_2gf = cfg({ 2, 5, 13, 1 }, { 72, 216, 576, 1512 }, 24, 0.25),
  regnet_y_8gf = cfg({ 2, 4, 10, 1 }, { 224, 448, 896, 2016 }, 56, 0.25),
  regnet_y_16gf = cfg({ 2, 4, 11, 1 }, { 224, 448, 1232, 3024 }, 112, 0.25),
  regnet_y_32gf = cfg({ 2, 5, 12, 1 }, { 232, 696, 1392, 3712 }, 232, 0.25),
  regnet_x_400mf = cfg({ 1, 2, 7, 12 }, { 32, 64, 160, 400 }, 16),
  regnet_x_800mf = cfg({ 1, 3, 7, 5 }, { 64, 128, 288, 672 }, 16),
  regnet_x_1_6gf = cfg({ 2, 4, 10, 2 }, { 72, 168, 408, 912 }, 24),
  regnet_x_3_2gf = cfg({ 2, 6, 15, 2 }, { 96, 192, 432, 1008 }, 48),
  regnet_x_16gf = cfg({ 2, 6, 13, 1 }, { 256, 512, 896, 2048 }, 128),
  regnet_x_32gf = cfg({ 2, 7, 13, 1 }, { 336, 672, 1344, 2520 }, 168),
}
-- regnet_x_8gf's first stage has a group width of its own (80, then 120)
M.configs.regnet_x_8gf = cfg({ 2, 5, 15, 1 }, { 80, 240, 720, 1920 }, 120)
M.configs.regnet_x_8gf.group_widths = { 80, 120, 120, 120 }

return M
