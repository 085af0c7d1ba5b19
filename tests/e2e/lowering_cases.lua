-- Graphs that exercise lowering paths the model fixtures may not reach: ops left unfused, a
-- flatten of a spatial map (an HWC -> CHW copy step), a BatchNorm kept as an affine. Checked by
-- lowering_cases.sh with `foldc check` (bundle vs the reference interpreter).
local nn = require 'nn'

local function model(input, build) return { input = input, build = build } end

return { family = 'lowering cases', configs = {
  unfused_relu = model({ 1, 4, 5, 5 }, function()
    local m = nn.Module('M')
    m.conv = nn.Conv2d(4, 4, 3, { padding = 1 })
    function m:forward(x) local y = self.conv(x); return nn.relu(y) + y end
    return m
  end),
  unfused_add_relu = model({ 1, 6, 8, 8 }, function()
    local m = nn.Module('M')
    function m:forward(x)
      local y = nn.relu(nn.max_pool2d(x, 2) + nn.avg_pool2d(x, 2))
      return y
    end
    return m
  end),
  flatten_spatial = model({ 1, 5, 4, 3 }, function()
    local m = nn.Module('M')
    m.conv = nn.Conv2d(5, 7, 1)
    m.fc = nn.Linear(7 * 4 * 3, 9)
    function m:forward(x) return self.fc(nn.flatten(self.conv(x), 1)) end
    return m
  end),
  bn_affine_output = model({ 1, 16, 6, 6 }, function()
    local m = nn.Module('M')
    m.bn0 = nn.BatchNorm2d(16)
    m.conv = nn.Conv2d(16, 16, 3, { padding = 1, groups = 16 })
    m.bn1 = nn.BatchNorm2d(16)
    function m:forward(x) local y = self.conv(self.bn0(x)); return self.bn1(y) + y end
    return m
  end),
} }
