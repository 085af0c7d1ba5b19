-- RepMLP-ResNet (Ding et al., "RepMLP: Re-parameterizing Convolutions into Fully-connected Layers
-- for Image Recognition", 2021), as DingXiaoH/RepMLP's repmlp_resnet.py and repmlp_blocks.py
-- (@ 4b3e347) define it, with their state_dict keys: stage0 (ConvBNReLU 7x7/2, max-pool), stage1..4
-- of blocks, gap, linear. A block is the ResNet-50 bottleneck (BaseBlock: shortcut, conv1..3) except
-- the non-downsampling blocks of the stages at 1/8 and 1/16 resolution, which are RepMLP Light
-- Blocks: light_conv1 (1x1 to channels/8, ReLU), light_repmlp (nn.RepMLP on the H x W map, h x w
-- partitions), ReLU, light_conv3 (1x1), + shortcut, ReLU. With deploy = true, the converted form
-- (ConvBN as a conv with bias, RepMLP after switch_to_deploy); `foldc build` takes either.
local nn = require 'nn'

local M = { family = 'RepMLP' }

local function BaseBlock(cin, mid, cout, stride, deploy)
  local m = nn.Module('BaseBlock')
  if stride ~= 1 or cin ~= cout then m.shortcut = nn.ConvBN(cin, cout, 1, { stride = stride, deploy = deploy }) end
  m.conv1 = nn.ConvBN(cin, mid, 1, { relu = true, deploy = deploy })
  m.conv2 = nn.ConvBN(mid, mid, 3, { stride = stride, padding = 1, relu = true, deploy = deploy })
  m.conv3 = nn.ConvBN(mid, cout, 1, { deploy = deploy })
  function m:forward(x)
    return nn.relu(self.conv3(self.conv2(self.conv1(x))) + (self.shortcut and self.shortcut(x) or x))
  end
  return m
end

local function LightBlock(cin, mid, cout, H, W, cfg)
  local m = nn.Module('RepMLPLightBlock')
  if cin ~= cout then m.shortcut = nn.ConvBN(cin, cout, 1, { deploy = cfg.deploy }) end
  m.light_conv1 = nn.ConvBN(cin, mid, 1, { relu = true, deploy = cfg.deploy })
  m.light_repmlp = nn.RepMLP(mid, mid, H, W, cfg.h, cfg.w, { reparam_conv_k = cfg.reparam_conv_k,
    fc1_fc2_reduction = cfg.fc1_fc2_reduction, fc3_groups = cfg.fc3_groups, deploy = cfg.deploy })
  m.light_conv3 = nn.ConvBN(mid, cout, 1, { deploy = cfg.deploy })
  function m:forward(x)
    local out = self.light_conv3(nn.relu(self.light_repmlp(self.light_conv1(x))))
    return nn.relu(out + (self.shortcut and self.shortcut(x) or x))
  end
  return m
end

-- repmlp_resnet{num_blocks = {3, 4, 6, 3}, img = 224, h = 7, w = 7, reparam_conv_k = {1, 3, 5},
--   fc1_fc2_reduction = 1, fc3_groups = 4, width = 1 (multiplier of 64 / 256..2048), num_classes,
--   deploy}
function M.repmlp_resnet(cfg)
  local width = cfg.width or 1
  local m = nn.Module('RepMLPResNet')
  local in_channels = math.floor(64 * width)
  m.stage0 = nn.Sequential(nn.ConvBN(3, in_channels, 7, { stride = 2, padding = 3, relu = true, deploy = cfg.deploy }),
    nn.MaxPool2d(3, { stride = 2, padding = 1 }))
  local ratios = { 4, 8, 16, 32 }
  for s = 1, 4 do
    local channels = math.floor(256 * 2 ^ (s - 1) * width)
    local stage = nn.Sequential()
    for b = 1, cfg.num_blocks[s] do
      local stride = (b == 1 and s > 1) and 2 or 1
      local ratio = ratios[s]
      if stride == 2 or (ratio ~= 8 and ratio ~= 16) then
        stage:add(BaseBlock(in_channels, math.floor(channels / 4), channels, stride, cfg.deploy))
      else
        stage:add(LightBlock(in_channels, math.floor(channels / 8), channels, cfg.img / ratio, cfg.img / ratio, cfg))
      end
      in_channels = channels
    end
    m['stage' .. s] = stage
  end
  nn.staged_classifier(m, in_channels, cfg.num_classes)
  return m
end

-- The weights determine the number of classes (foldc takes it from the checkpoint, either form).
M.from_weights = { num_classes = { key = 'linear.weight', dim = 1 } }

M.configs = {
  repmlp_res50_light_224 = { build = M.repmlp_resnet, num_blocks = { 3, 4, 6, 3 }, img = 224, h = 7, w = 7,
                             reparam_conv_k = { 1, 3, 5 }, fc1_fc2_reduction = 1, fc3_groups = 4,
                             has_deploy_form = true, input = { 1, 3, 224, 224 }, size_key = 'img' },
}

return M
