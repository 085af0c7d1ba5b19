-- Xception (Chollet, "Xception: Deep Learning with Depthwise Separable Convolutions", CVPR 2017), as
-- timm v0.4.12's xception.py defines it, with its state_dict keys: a stem (conv1 3x3/2, bn1, ReLU,
-- conv2 3x3, bn2, ReLU), blocks block1..block12 of `reps` separable convs (SeparableConv2d: conv1
-- depthwise 3x3 then pointwise 1x1, no biases), each after a ReLU and before a BatchNorm (rep.N: the
-- ReLUs take indices), a 3x3/2 max pool ending the strided blocks, and a shortcut (skip: 1x1 conv
-- with skipbn where the width or stride changes), then conv3/bn3, conv4/bn4 with ReLUs, global
-- average pool, fc. 299x299 input.
local nn = require 'nn'

local M = { family = 'Xception' }

local function SeparableConv2d(cin, cout)
  local m = nn.Module('SeparableConv2d')
  m.conv1 = nn.Conv2d(cin, cin, 3, { padding = 1, groups = cin, bias = false })
  m.pointwise = nn.Conv2d(cin, cout, 1, { bias = false })
  function m:forward(x) return self.pointwise(self.conv1(x)) end
  return m
end

local function Block(cin, cout, reps, stride, start_with_relu, grow_first)
  local m = nn.Module('Block')
  if cout ~= cin or stride ~= 1 then
    m.skip = nn.Conv2d(cin, cout, 1, { stride = stride, bias = false })
    m.skipbn = nn.BatchNorm2d(cout)
  end
  m.rep = nn.Sequential()
  for i = 0, reps - 1 do
    local inc, outc
    if grow_first then
      inc, outc = i == 0 and cin or cout, cout
    else
      inc, outc = cin, i < reps - 1 and cin or cout
    end
    if start_with_relu or i > 0 then m.rep:add(nn.ReLU()) end
    m.rep:add(SeparableConv2d(inc, outc))
    m.rep:add(nn.BatchNorm2d(outc))
  end
  if stride ~= 1 then m.rep:add(nn.MaxPool2d(3, { stride = stride, padding = 1 })) end
  function m:forward(x)
    return self.rep(x) + (self.skip and self.skipbn(self.skip(x)) or x)
  end
  return m
end

-- xception{num_classes = 1000, middle = 8 (blocks of the middle flow), width_div = 1 (every width
-- but the input's divided by it: reduced test models)}
function M.xception(cfg)
  local m = nn.Module('Xception')
  local w = nn.width_divider(m, 'xception', cfg.width_div)
  m.conv1 = nn.Conv2d(3, w(32), 3, { stride = 2, bias = false })
  m.bn1 = nn.BatchNorm2d(w(32))
  m.conv2 = nn.Conv2d(w(32), w(64), 3, { bias = false })
  m.bn2 = nn.BatchNorm2d(w(64))
  local blocks = { Block(w(64), w(128), 2, 2, false, true), Block(w(128), w(256), 2, 2, true, true),
                   Block(w(256), w(728), 2, 2, true, true) }
  for _ = 1, cfg.middle or 8 do blocks[#blocks + 1] = Block(w(728), w(728), 3, 1, true, true) end
  blocks[#blocks + 1] = Block(w(728), w(1024), 2, 2, true, false)
  for i, b in ipairs(blocks) do m['block' .. i] = b end
  m.conv3 = SeparableConv2d(w(1024), w(1536))
  m.bn3 = nn.BatchNorm2d(w(1536))
  m.conv4 = SeparableConv2d(w(1536), w(2048))
  m.bn4 = nn.BatchNorm2d(w(2048))
  m.fc = nn.Linear(w(2048), cfg.num_classes or 1000)
  function m:forward(x)
    x = nn.relu(self.bn2(self.conv2(nn.relu(self.bn1(self.conv1(x))))))
    for i = 1, #blocks do x = self['block' .. i](x) end
    x = nn.relu(self.bn4(self.conv4(nn.relu(self.bn3(self.conv3(x))))))
    return self.fc(nn.flatten(nn.adaptive_avg_pool2d(x, 1), 1))
  end
  return m
end

M.from_weights = { num_classes = { key = 'fc.weight', dim = 1 } }

M.configs = {
  xception = { build = M.xception, input = { 1, 3, 299, 299 } },
}

return M
