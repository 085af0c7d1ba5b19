-- Inception v3 (Szegedy et al., "Rethinking the Inception Architecture for Computer Vision", CVPR
-- 2016), as torchvision 0.14's inception.py defines it, with its state_dict keys: a stem of
-- BasicConv2d (conv without bias, BatchNorm eps 1e-3, ReLU) and max pools, the Mixed_5b..7c blocks
-- (InceptionA..E: parallel branches of 1x1, 3x3, 5x5, factorised 1x7/7x1 and 1x3/3x1 convs and a
-- pool, joined along channels without copies), global average pool, fc. At inference the auxiliary
-- classifier (AuxLogits.*) is unused: its keys are training-only. transform_input (torchvision sets it
-- when built from its ImageNet weights) maps the input channels from the ImageNet normalisation to
-- [-1, 1] first: x_c * std_c / 0.5 + (mean_c - 0.5) / 0.5.
local nn = require 'nn'

local M = { family = 'Inception' }

local function BasicConv2d(cin, cout, k, o)
  o = o or {}
  local m = nn.Module('BasicConv2d')
  m.conv = nn.Conv2d(cin, cout, k, { stride = o.stride, padding = o.padding, bias = false })
  m.bn = nn.BatchNorm2d(cout, { eps = 0.001 })
  function m:forward(x) return nn.relu(self.bn(self.conv(x))) end
  return m
end

-- A block: its branches (lists of module names applied in turn; a name of a function is a pool),
-- joined along channels in order.
local function Block(kind, convs, branches)
  local m = nn.Module(kind)
  for _, c in ipairs(convs) do m[c[1]] = BasicConv2d(c[2], c[3], c[4], c[5]) end
  function m:forward(x)
    local outs = {}
    for _, branch in ipairs(branches) do
      local y = x
      for _, step in ipairs(branch) do
        if type(step) == 'function' then y = step(y)
        elseif type(step) == 'table' then -- a split: the branch ends in two convs of one input
          outs[#outs + 1] = self[step[1]](y)
          y = self[step[2]](y)
        else y = self[step](y) end
      end
      outs[#outs + 1] = y
    end
    return nn.cat(outs, 1)
  end
  return m
end

local function avg3(x) return nn.avg_pool2d(x, 3, { stride = 1, padding = 1 }) end
local function max3s2(x) return nn.max_pool2d(x, 3, { stride = 2 }) end

local function InceptionA(w, cin, pool_features)
  return Block('InceptionA', {
    { 'branch1x1', cin, w(64), 1 }, { 'branch5x5_1', cin, w(48), 1 }, { 'branch5x5_2', w(48), w(64), 5, { padding = 2 } },
    { 'branch3x3dbl_1', cin, w(64), 1 }, { 'branch3x3dbl_2', w(64), w(96), 3, { padding = 1 } },
    { 'branch3x3dbl_3', w(96), w(96), 3, { padding = 1 } }, { 'branch_pool', cin, pool_features, 1 },
  }, { { 'branch1x1' }, { 'branch5x5_1', 'branch5x5_2' }, { 'branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3' },
       { avg3, 'branch_pool' } })
end

local function InceptionB(w, cin)
  return Block('InceptionB', {
    { 'branch3x3', cin, w(384), 3, { stride = 2 } }, { 'branch3x3dbl_1', cin, w(64), 1 },
    { 'branch3x3dbl_2', w(64), w(96), 3, { padding = 1 } }, { 'branch3x3dbl_3', w(96), w(96), 3, { stride = 2 } },
  }, { { 'branch3x3' }, { 'branch3x3dbl_1', 'branch3x3dbl_2', 'branch3x3dbl_3' }, { max3s2 } })
end

local function InceptionC(w, cin, c7)
  local k17, k71 = { { 1, 7 }, { padding = { 0, 3 } } }, { { 7, 1 }, { padding = { 3, 0 } } }
  return Block('InceptionC', {
    { 'branch1x1', cin, w(192), 1 }, { 'branch7x7_1', cin, c7, 1 }, { 'branch7x7_2', c7, c7, k17[1], k17[2] },
    { 'branch7x7_3', c7, w(192), k71[1], k71[2] }, { 'branch7x7dbl_1', cin, c7, 1 },
    { 'branch7x7dbl_2', c7, c7, k71[1], k71[2] }, { 'branch7x7dbl_3', c7, c7, k17[1], k17[2] },
    { 'branch7x7dbl_4', c7, c7, k71[1], k71[2] }, { 'branch7x7dbl_5', c7, w(192), k17[1], k17[2] },
    { 'branch_pool', cin, w(192), 1 },
  }, { { 'branch1x1' }, { 'branch7x7_1', 'branch7x7_2', 'branch7x7_3' },
       { 'branch7x7dbl_1', 'branch7x7dbl_2', 'branch7x7dbl_3', 'branch7x7dbl_4', 'branch7x7dbl_5' },
       { avg3, 'branch_pool' } })
end

local function InceptionD(w, cin)
  return Block('InceptionD', {
    { 'branch3x3_1', cin, w(192), 1 }, { 'branch3x3_2', w(192), w(320), 3, { stride = 2 } },
    { 'branch7x7x3_1', cin, w(192), 1 }, { 'branch7x7x3_2', w(192), w(192), { 1, 7 }, { padding = { 0, 3 } } },
    { 'branch7x7x3_3', w(192), w(192), { 7, 1 }, { padding = { 3, 0 } } }, { 'branch7x7x3_4', w(192), w(192), 3, { stride = 2 } },
  }, { { 'branch3x3_1', 'branch3x3_2' }, { 'branch7x7x3_1', 'branch7x7x3_2', 'branch7x7x3_3', 'branch7x7x3_4' },
       { max3s2 } })
end

local function InceptionE(w, cin)
  return Block('InceptionE', {
    { 'branch1x1', cin, w(320), 1 }, { 'branch3x3_1', cin, w(384), 1 },
    { 'branch3x3_2a', w(384), w(384), { 1, 3 }, { padding = { 0, 1 } } }, { 'branch3x3_2b', w(384), w(384), { 3, 1 }, { padding = { 1, 0 } } },
    { 'branch3x3dbl_1', cin, w(448), 1 }, { 'branch3x3dbl_2', w(448), w(384), 3, { padding = 1 } },
    { 'branch3x3dbl_3a', w(384), w(384), { 1, 3 }, { padding = { 0, 1 } } },
    { 'branch3x3dbl_3b', w(384), w(384), { 3, 1 }, { padding = { 1, 0 } } }, { 'branch_pool', cin, w(192), 1 },
  }, { { 'branch1x1' }, { 'branch3x3_1', { 'branch3x3_2a', 'branch3x3_2b' } },
       { 'branch3x3dbl_1', 'branch3x3dbl_2', { 'branch3x3dbl_3a', 'branch3x3dbl_3b' } }, { avg3, 'branch_pool' } })
end

-- inception_v3{num_classes = 1000, transform_input = false, width_div = 1 (every width but the
-- input's divided by it: reduced test models)}
function M.inception_v3(cfg)
  local m = nn.Module('Inception3')
  local w = nn.width_divider(m, 'inception_v3', cfg.width_div)
  m.Conv2d_1a_3x3 = BasicConv2d(3, w(32), 3, { stride = 2 })
  m.Conv2d_2a_3x3 = BasicConv2d(w(32), w(32), 3)
  m.Conv2d_2b_3x3 = BasicConv2d(w(32), w(64), 3, { padding = 1 })
  m.Conv2d_3b_1x1 = BasicConv2d(w(64), w(80), 1)
  m.Conv2d_4a_3x3 = BasicConv2d(w(80), w(192), 3)
  m.Mixed_5b = InceptionA(w, w(192), w(32))
  m.Mixed_5c = InceptionA(w, w(256), w(64))
  m.Mixed_5d = InceptionA(w, w(288), w(64))
  m.Mixed_6a = InceptionB(w, w(288))
  m.Mixed_6b = InceptionC(w, w(768), w(128))
  m.Mixed_6c = InceptionC(w, w(768), w(160))
  m.Mixed_6d = InceptionC(w, w(768), w(160))
  m.Mixed_6e = InceptionC(w, w(768), w(192))
  m.Mixed_7a = InceptionD(w, w(768))
  m.Mixed_7b = InceptionE(w, w(1280))
  m.Mixed_7c = InceptionE(w, w(2048))
  m.fc = nn.Linear(w(2048), cfg.num_classes or 1000)
  function m:forward(x)
    if cfg.transform_input then
      x = nn.affine_channels(x, { 0.229 / 0.5, 0.224 / 0.5, 0.225 / 0.5 },
        { (0.485 - 0.5) / 0.5, (0.456 - 0.5) / 0.5, (0.406 - 0.5) / 0.5 })
    end
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(max3s2(x)))
    x = max3s2(x)
    for _, name in ipairs({ 'Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b', 'Mixed_6c', 'Mixed_6d',
                            'Mixed_6e', 'Mixed_7a', 'Mixed_7b', 'Mixed_7c' }) do
      x = self[name](x)
    end
    return self.fc(nn.flatten(nn.adaptive_avg_pool2d(x, 1), 1))
  end
  return m
end

M.from_weights = { num_classes = { key = 'fc.weight', dim = 1 } }

M.configs = {
  inception_v3 = { build = M.inception_v3, input = { 1, 3, 299, 299 }, transform_input = false,
                   training_only = { 'AuxLogits.' } },
}

return M
