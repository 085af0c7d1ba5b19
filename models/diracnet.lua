-- DiracNet v2, folded (Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural Networks
-- Without Skip-Connections", 2017): after training, W = alpha*delta + beta*normalize(W) and the BN
-- are folded into plain conv+bias, leaving a chain ReLU -> conv3x3 with max-pool between groups.
-- Keys as the reference's DiracNet module (szagoruyko/diracnets): features.conv,
-- features.groupG.blockB.conv, fc.
local nn = require 'nn'

local M = { family = 'DiracNet' }

local block_depths = { [18] = { 4, 4, 4, 4 }, [34] = { 6, 8, 12, 6 } }

-- diracnet{depth=18|34, width=64, num_classes=1000, final_pool=7}
function M.diracnet(cfg)
  local depths = block_depths[cfg.depth] or nn.fail(nn.caller_where(), 'diracnet depth must be 18 or 34')
  local width = cfg.width or 64
  local features = nn.Sequential()
  features:add('conv', nn.Conv2d(3, width, 7, { stride = 2, padding = 3 }))
  features:add('max_pool0', nn.MaxPool2d(3, { stride = 2, padding = 1 }))
  local channels = width
  for g, count in ipairs(depths) do
    local group_width = width * 2 ^ (g - 1)
    for b = 0, count - 1 do
      local name = string.format('group%d.block%d.', g - 1, b)
      features:add(name .. 'relu', nn.ReLU())
      features:add(name .. 'conv', nn.Conv2d(channels, group_width, 3, { padding = 1 }))
      channels = group_width
    end
    if g ~= #depths then
      features:add('max_pool' .. g, nn.MaxPool2d(2))
    else
      features:add('last_relu', nn.ReLU())
      features:add('avg_pool', nn.AvgPool2d(cfg.final_pool or 7))
    end
  end
  local m = nn.Module('DiracNet')
  m.features = features
  m.fc = nn.Linear(channels, cfg.num_classes or 1000)
  function m:forward(x)
    return self.fc(nn.flatten(self.features(x), 1))
  end
  return m
end

-- The training form: szagoruyko/diracnets' functional define_diracnet(depth, 1, 'ImageNet') (v2),
-- whose flat state_dict has a stem `conv` + `bn`, blocks `groupG.blockB.{conv, alpha, beta, bn}`,
-- `fc` and one dirac delta buffer `eye<no>_<ni>_3_3` per block conv shape:
--   o = bn(conv7x7/2(x)); max_pool(3, 2, 1); groupG (blocks: bn(dirac_conv(relu(o)))), max_pool(2)
--   between groups; relu; avg_pool over the whole map; fc.
-- With deploy = true, the folded DiracNet module above (what passes/fold_dirac.lua and
-- passes/fold_bn.lua turn the training form into, under its keys).
-- diracnet_train{depth = 18|34, width = 64, num_classes = 1000, final_pool = 7 (deploy form), deploy}
function M.diracnet_train(cfg)
  if cfg.deploy then return M.diracnet(cfg) end
  local depths = block_depths[cfg.depth] or nn.fail(nn.caller_where(), 'diracnet depth must be 18 or 34')
  local width = cfg.width or 64
  local m = nn.Module('DiracNetFunctional')
  m:param('conv', { width, 3, 7, 7 })
  m.bn = nn.DiracBN(width)
  local blocks, eyes = {}, {}
  local channels = width
  for g, count in ipairs(depths) do
    local group_width = width * 2 ^ (g - 1)
    for b = 0, count - 1 do
      local name = string.format('group%d.block%d', g - 1, b)
      local eye = string.format('eye%d_%d_3_3', group_width, channels)
      if not eyes[eye] then
        eyes[eye] = true
        m:param(eye, { group_width, channels, 3, 3 }, { buffer = true })
      end
      m:add(name, nn.DiracBlock(channels, group_width, { eye = eye, deploy = 'features.' .. name .. '.conv' }))
      blocks[#blocks + 1] = { name = name, group = g }
      channels = group_width
    end
  end
  m.fc = nn.Linear(channels, cfg.num_classes or 1000)
  function m:forward(x)
    local o = nn.dirac_stem(self, x, { cin = 3, cout = width, kernel = 7, stride = 2, padding = 3, deploy = 'features.conv' })
    o = nn.max_pool2d(o, 3, { stride = 2, padding = 1 })
    local group = 1
    for _, b in ipairs(blocks) do
      if b.group ~= group then
        o = nn.max_pool2d(o, 2)
        group = b.group
      end
      o = self[b.name](o)
    end
    o = nn.relu(o)
    o = nn.avg_pool2d(o, o:size(4))
    return self.fc(nn.flatten(o, 1))
  end
  return m
end

-- The weights determine the number of classes (foldc takes it from the checkpoint).
M.from_weights = { num_classes = { key = 'fc.weight', dim = 1 } }

M.configs = {
  diracnet18 = { build = M.diracnet, depth = 18, input = { 1, 3, 224, 224 } },
  diracnet34 = { build = M.diracnet, depth = 34, input = { 1, 3, 224, 224 } },
  diracnet18_train = { build = M.diracnet_train, depth = 18, has_deploy_form = true, input = { 1, 3, 224, 224 } },
  diracnet34_train = { build = M.diracnet_train, depth = 34, has_deploy_form = true, input = { 1, 3, 224, 224 } },
}

return M
