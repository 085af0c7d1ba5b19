-- The guide's worked example (models/README.md): MyNet of models/examples/my_net.py, field for
-- field, so the state_dict keys are the same. `foldc run models/examples/my_net.lua --weights
-- my_net.pth ...` (or `--input` with another size).
local nn = require 'nn'

local function Head(cin, hidden, num_classes)
  local m = nn.Module('Head')
  m.pool = nn.AdaptiveAvgPool2d(1)
  m.mlp = nn.Sequential(
    nn.Linear(cin, hidden),
    nn.GELU(),
    nn.Dropout(0.2),
    nn.Linear(hidden, num_classes))
  function m:forward(x)
    return self.mlp(nn.flatten(self.pool(x), 1))
  end
  return m
end

local function MyNet(cfg)
  local w = cfg.width
  local m = nn.Module('MyNet')
  m.stem = nn.ConvBN(3, w, 3, { stride = 2, padding = 1, deploy = cfg.deploy })
  m.block1 = nn.RepVGGBlock(w, 2 * w, { stride = 2, deploy = cfg.deploy })
  m.block2 = nn.RepVGGBlock(2 * w, 2 * w, { deploy = cfg.deploy })
  m.head = Head(2 * w, cfg.hidden, cfg.num_classes)
  function m:forward(x)
    x = nn.relu(self.stem(x))
    return self.head(self.block2(self.block1(x)))
  end
  return m
end

return {
  family = 'MyNet',
  configs = {
    my_net = { build = MyNet, input = { 1, 3, 32, 32 }, width = 16, hidden = 32, num_classes = 10,
               has_deploy_form = true },
  },
}
