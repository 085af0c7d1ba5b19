-- ResNet (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016), as torchvision
-- 0.14 defines it (v1.5: the stride sits on the bottleneck's 3x3), with torchvision's state_dict
-- keys: conv1, bn1, layer1..4.N.{conv,bn}{1,2,3}, layerK.0.downsample.{0,1}, fc. The same class makes
-- ResNeXt (Xie et al., "Aggregated Residual Transformations for Deep Neural Networks", CVPR 2017:
-- the bottleneck's 3x3 in `groups` groups) and Wide ResNet (Zagoruyko & Komodakis, BMVC 2016, as
-- torchvision has it: a bottleneck twice as wide): the 3x3 has floor(planes * width_per_group / 64)
-- * groups channels.
local nn = require 'nn'

local M = { family = 'ResNet' }

-- The weights determine the number of classes (foldc takes it from the checkpoint).
M.from_weights = { num_classes = { key = 'fc.weight', dim = 1 } }

local function BasicBlock(inplanes, planes, stride, downsample)
  local m = nn.Module('BasicBlock')
  m.conv1 = nn.Conv2d(inplanes, planes, 3, { stride = stride, padding = 1, bias = false })
  m.bn1 = nn.BatchNorm2d(planes)
  m.relu = nn.ReLU()
  m.conv2 = nn.Conv2d(planes, planes, 3, { padding = 1, bias = false })
  m.bn2 = nn.BatchNorm2d(planes)
  if downsample then m.downsample = downsample end
  function m:forward(x)
    local out = self.relu(self.bn1(self.conv1(x)))
    out = self.bn2(self.conv2(out))
    local identity = self.downsample and self.downsample(x) or x
    return self.relu(out + identity)
  end
  return m
end

local function Bottleneck(inplanes, planes, stride, downsample, groups, width_per_group)
  local width = math.floor(planes * width_per_group / 64) * groups
  local m = nn.Module('Bottleneck')
  m.conv1 = nn.Conv2d(inplanes, width, 1, { bias = false })
  m.bn1 = nn.BatchNorm2d(width)
  m.conv2 = nn.Conv2d(width, width, 3, { stride = stride, padding = 1, groups = groups, bias = false })
  m.bn2 = nn.BatchNorm2d(width)
  m.conv3 = nn.Conv2d(width, planes * 4, 1, { bias = false })
  m.bn3 = nn.BatchNorm2d(planes * 4)
  m.relu = nn.ReLU()
  if downsample then m.downsample = downsample end
  function m:forward(x)
    local out = self.relu(self.bn1(self.conv1(x)))
    out = self.relu(self.bn2(self.conv2(out)))
    out = self.bn3(self.conv3(out))
    local identity = self.downsample and self.downsample(x) or x
    return self.relu(out + identity)
  end
  return m
end

local depths = {
  [18] = { BasicBlock, 1, { 2, 2, 2, 2 } },
  [34] = { BasicBlock, 1, { 3, 4, 6, 3 } },
  [50] = { Bottleneck, 4, { 3, 4, 6, 3 } },
  [101] = { Bottleneck, 4, { 3, 4, 23, 3 } },
}

-- resnet{depth=18|34|50|101, width=64, groups=1, width_per_group=64, num_classes=1000}: the model (a
-- module). width: the stem's channels (stage i's planes: width * 2^(i-1)); groups, width_per_group:
-- the bottleneck's 3x3 (ResNeXt, Wide ResNet; torchvision refuses them on BasicBlock, as here);
-- layers: blocks per stage, instead of the depth's (reduced test models).
function M.resnet(cfg)
  local spec = depths[cfg.depth] or nn.fail(nn.caller_where(), 'resnet depth must be 18, 34, 50 or 101')
  local block, expansion, layers = spec[1], spec[2], cfg.layers or spec[3]
  local width = cfg.width or 64
  local groups, width_per_group = cfg.groups or 1, cfg.width_per_group or 64
  if block == BasicBlock and (groups ~= 1 or width_per_group ~= 64) then
    nn.fail(nn.caller_where(), 'BasicBlock only supports groups=1 and width_per_group=64')
  end
  local m = nn.Module('ResNet')
  m.conv1 = nn.Conv2d(3, width, 7, { stride = 2, padding = 3, bias = false })
  m.bn1 = nn.BatchNorm2d(width)
  m.relu = nn.ReLU()
  m.maxpool = nn.MaxPool2d(3, { stride = 2, padding = 1 })
  local inplanes = width
  for i, count in ipairs(layers) do
    local planes, stride = width * 2 ^ (i - 1), i == 1 and 1 or 2
    local layer = nn.Sequential()
    for b = 1, count do
      local s = b == 1 and stride or 1
      local downsample
      if b == 1 and (s ~= 1 or inplanes ~= planes * expansion) then
        downsample = nn.Sequential(
          nn.Conv2d(inplanes, planes * expansion, 1, { stride = s, bias = false }),
          nn.BatchNorm2d(planes * expansion))
      end
      layer:add(block(inplanes, planes, s, downsample, groups, width_per_group))
      inplanes = planes * expansion
    end
    m['layer' .. i] = layer
  end
  m.avgpool = nn.AdaptiveAvgPool2d(1)
  m.fc = nn.Linear(inplanes, cfg.num_classes or 1000)
  function m:forward(x)
    x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
    x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
    return self.fc(nn.flatten(self.avgpool(x), 1))
  end
  return m
end

M.configs = {
  resnet18 = { build = M.resnet, depth = 18, input = { 1, 3, 224, 224 } },
  resnet34 = { build = M.resnet, depth = 34, input = { 1, 3, 224, 224 } },
  resnet50 = { build = M.resnet, depth = 50, input = { 1, 3, 224, 224 } },
  resnet101 = { build = M.resnet, depth = 101, input = { 1, 3, 224, 224 } },
  resnext50_32x4d = { build = M.resnet, depth = 50, groups = 32, width_per_group = 4, input = { 1, 3, 224, 224 } },
  resnext101_32x8d = { build = M.resnet, depth = 101, groups = 32, width_per_group = 8, input = { 1, 3, 224, 224 } },
  wide_resnet50_2 = { build = M.resnet, depth = 50, width_per_group = 128, input = { 1, 3, 224, 224 } },
  wide_resnet101_2 = { build = M.resnet, depth = 101, width_per_group = 128, input = { 1, 3, 224, 224 } },
}

return M
