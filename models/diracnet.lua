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

M.configs = {
  diracnet18 = { build = M.diracnet, depth = 18, input = { 1, 3, 224, 224 } },
  diracnet34 = { build = M.diracnet, depth = 34, input = { 1, 3, 224, 224 } },
}

return M
