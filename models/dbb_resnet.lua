-- ResNet-18/50 with ACNet or Diverse Branch Blocks, as DingXiaoH/DiverseBranchBlock's resnet.py
-- and convnet_utils.py define them, with their state_dict keys: every conv_bn / conv_bn_relu with
-- a kernel between 2 and 6 (the 3x3s) is an ACBlock (acb_*) or a DiverseBranchBlock (dbb_*), the
-- others (7x7 stem, 1x1 shortcuts and bottleneck 1x1s) a ConvBN (conv + bn). Keys: stage0.conv1,
-- stage1..4.N.{shortcut,conv1,conv2[,conv3]}, linear. With deploy = true, the converted form
-- (fused_conv / dbb_reparam, ConvBN as a conv with bias); `foldc build` takes either.
local nn = require 'nn'

local M = { family = 'DBB-ResNet' }

-- conv_bn(cin, cout, k, {stride, padding, relu}) of the chosen implementation.
local function conv_bn_factory(cfg)
  return function(cin, cout, k, o)
    o.deploy = cfg.deploy
    if k == 1 or k >= 7 then return nn.ConvBN(cin, cout, k, o) end
    if cfg.impl == 'ACB' then return nn.ACBlock(cin, cout, k, o) end
    return nn.DiverseBranchBlock(cin, cout, k, o)
  end
end

local function BasicBlock(conv_bn, in_planes, planes, stride)
  local m = nn.Module('BasicBlock')
  if stride ~= 1 or in_planes ~= planes then
    m.shortcut = conv_bn(in_planes, planes, 1, { stride = stride })
  end
  m.conv1 = conv_bn(in_planes, planes, 3, { stride = stride, padding = 1, relu = true })
  m.conv2 = conv_bn(planes, planes, 3, { padding = 1 })
  function m:forward(x)
    local out = self.conv2(self.conv1(x))
    return nn.relu(out + (self.shortcut and self.shortcut(x) or x))
  end
  return m
end

local function Bottleneck(conv_bn, in_planes, planes, stride)
  local m = nn.Module('Bottleneck')
  if stride ~= 1 or in_planes ~= 4 * planes then
    m.shortcut = conv_bn(in_planes, 4 * planes, 1, { stride = stride })
  end
  m.conv1 = conv_bn(in_planes, planes, 1, { relu = true })
  m.conv2 = conv_bn(planes, planes, 3, { stride = stride, padding = 1, relu = true })
  m.conv3 = conv_bn(planes, 4 * planes, 1, {})
  function m:forward(x)
    local out = self.conv3(self.conv2(self.conv1(x)))
    return nn.relu(out + (self.shortcut and self.shortcut(x) or x))
  end
  return m
end

local depths = { [18] = { BasicBlock, 1, { 2, 2, 2, 2 } }, [50] = { Bottleneck, 4, { 3, 4, 6, 3 } } }

-- dbb_resnet{impl = 'ACB'|'DBB', depth = 18|50, width = 1 (multiplier), num_classes = 1000, deploy}
function M.dbb_resnet(cfg)
  local spec = depths[cfg.depth] or nn.fail(nn.caller_where(), 'depth must be 18 or 50')
  local block, expansion, counts = spec[1], spec[2], spec[3]
  local conv_bn = conv_bn_factory(cfg)
  local width = cfg.width or 1
  local m = nn.Module('ResNet')
  local in_planes = math.floor(64 * width)
  m.stage0 = nn.Sequential()
  m.stage0:add('conv1', conv_bn(3, in_planes, 7, { stride = 2, padding = 3, relu = true }))
  m.stage0:add('maxpool', nn.MaxPool2d(3, { stride = 2, padding = 1 }))
  for s = 1, 4 do
    local planes = math.floor(64 * 2 ^ (s - 1) * width)
    local stage = nn.Sequential()
    for b = 1, counts[s] do
      stage:add(block(conv_bn, in_planes, planes, (b == 1 and s > 1) and 2 or 1))
      in_planes = planes * expansion
    end
    m['stage' .. s] = stage
  end
  nn.staged_classifier(m, in_planes, cfg.num_classes)
  return m
end

local function config(impl, depth)
  return { build = M.dbb_resnet, impl = impl, depth = depth, has_deploy_form = true, input = { 1, 3, 224, 224 } }
end

-- The weights determine the number of classes (foldc takes it from the checkpoint, either form).
M.from_weights = { num_classes = { key = 'linear.weight', dim = 1 } }

M.configs = {
  acb_resnet18 = config('ACB', 18),
  dbb_resnet18 = config('DBB', 18),
  acb_resnet50 = config('ACB', 50),
  dbb_resnet50 = config('DBB', 50),
}

return M
