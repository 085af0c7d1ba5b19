-- ShuffleNetV2 (Ma et al., "ShuffleNet V2: Practical Guidelines for Efficient CNN Architecture
-- Design", ECCV 2018), as torchvision 0.14 defines it, with its state_dict keys: conv1.{0,1},
-- stageS.N.branch1.{0..3} (the stride-2 unit's left branch), stageS.N.branch2.{0,1,3,4,5,6}, conv5.{0,1},
-- fc. A stride-1 unit splits its input in two halves (x.chunk(2, 1): views), keeps the first and runs
-- the second through 1x1 conv-BN-ReLU, depthwise 3x3 conv-BN (no ReLU), 1x1 conv-BN-ReLU; a stride-2
-- unit runs both branches on the whole input. The halves are joined and shuffled in 2 groups in one
-- kernel (passes/fuse_shuffle.lua).
local nn = require 'nn'

local M = { family = 'ShuffleNetV2' }

M.from_weights = { num_classes = { key = 'fc.weight', dim = 1 } }

local function InvertedResidual(inp, oup, stride)
  local half = oup / 2
  local m = nn.Module('InvertedResidual')
  if stride > 1 then
    m.branch1 = nn.Sequential(
      nn.Conv2d(inp, inp, 3, { stride = stride, padding = 1, groups = inp, bias = false }),
      nn.BatchNorm2d(inp),
      nn.Conv2d(inp, half, 1, { bias = false }),
      nn.BatchNorm2d(half),
      nn.ReLU())
  end
  m.branch2 = nn.Sequential(
    nn.Conv2d(stride > 1 and inp or half, half, 1, { bias = false }),
    nn.BatchNorm2d(half),
    nn.ReLU(),
    nn.Conv2d(half, half, 3, { stride = stride, padding = 1, groups = half, bias = false }),
    nn.BatchNorm2d(half),
    nn.Conv2d(half, half, 1, { bias = false }),
    nn.BatchNorm2d(half),
    nn.ReLU())
  m.stride = stride
  function m:forward(x)
    local out
    if self.stride == 1 then
      local x1, x2 = nn.chunk(x, 2, 1)
      out = nn.cat({ x1, self.branch2(x2) }, 1)
    else
      out = nn.cat({ self.branch1(x), self.branch2(x) }, 1)
    end
    return nn.channel_shuffle(out, 2)
  end
  return m
end

-- shufflenet_v2{stages_repeats={4, 8, 4}, stages_out_channels={24, 116, 232, 464, 1024},
-- num_classes=1000}: the model.
function M.shufflenet_v2(cfg)
  local repeats, channels = cfg.stages_repeats or { 4, 8, 4 }, cfg.stages_out_channels
  local m = nn.Module('ShuffleNetV2')
  m.conv1 = nn.Sequential(
    nn.Conv2d(3, channels[1], 3, { stride = 2, padding = 1, bias = false }),
    nn.BatchNorm2d(channels[1]),
    nn.ReLU())
  m.maxpool = nn.MaxPool2d(3, { stride = 2, padding = 1 })
  local cin = channels[1]
  for i, count in ipairs(repeats) do
    local stage = nn.Sequential()
    stage:add(InvertedResidual(cin, channels[i + 1], 2))
    for _ = 2, count do stage:add(InvertedResidual(channels[i + 1], channels[i + 1], 1)) end
    m['stage' .. (i + 1)] = stage
    cin = channels[i + 1]
  end
  m.conv5 = nn.Sequential(
    nn.Conv2d(cin, channels[#channels], 1, { bias = false }),
    nn.BatchNorm2d(channels[#channels]),
    nn.ReLU())
  m.fc = nn.Linear(channels[#channels], cfg.num_classes or 1000)
  function m:forward(x)
    x = self.stage4(self.stage3(self.stage2(self.maxpool(self.conv1(x)))))
    return self.fc(nn.flatten(nn.adaptive_avg_pool2d(self.conv5(x), 1), 1)) -- x.mean([2, 3])
  end
  return m
end

M.configs = {
  shufflenet_v2_x0_5 = { build = M.shufflenet_v2, stages_out_channels = { 24, 48, 96, 192, 1024 }, input = { 1, 3, 224, 224 } },
  shufflenet_v2_x1_0 = { build = M.shufflenet_v2, stages_out_channels = { 24, 116, 232, 464, 1024 }, input = { 1, 3, 224, 224 } },
  shufflenet_v2_x1_5 = { build = M.shufflenet_v2, stages_out_channels = { 24, 176, 352, 704, 1024 }, input = { 1, 3, 224, 224 } },
  shufflenet_v2_x2_0 = { build = M.shufflenet_v2, stages_out_channels = { 24, 244, 488, 976, 2048 }, input = { 1, 3, 224, 224 } },
}

return M
