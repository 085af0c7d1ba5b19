-- RepMLP (Ding et al., "RepMLP: Re-parameterizing Convolutions into Fully-connected Layers for
-- Image Recognition", 2021), as DingXiaoH/RepMLP's repmlp.py (@ 4b3e347) defines it, with its
-- state_dict keys. A [1, C, H, W] map is cut into hp x wp partitions of h x w pixels (H = hp*h,
-- W = wp*w); each partition is pixel (i, j) of a [1, C*h*w, hp, wp] map in this IR, so:
--   global perceptron (when H > h or W > w):
--       v = fc2(relu(fc1(flatten(avg.bn(avgpool_hxw(x))))))        [1, C*hp*wp]
--       x = x + v, v's value for (c, i, j) on every pixel of partition (i, j) of channel c
--                                                                   (ops/partition_add.lua)
--   partition perceptron: fc3, a 1x1 conv with `groups` groups on the partitions [hp*wp, C*h*w, 1, 1]
--       (key fc3.weight [O*h*w, C*h*w/groups, 1, 1]), which on the map is exactly an h x w conv with
--       stride h x w and the same groups, its [O*h*w, C/groups, h, w] kernel the same memory (no copy
--       of x is made); then fc3_bn (BatchNorm1d over the O*h*w outputs of a partition, i.e. per
--       channel of the [1, O*h*w, hp, wp] map; same keys as BatchNorm2d), then the partitions put
--       back in place (ops/depth_to_space.lua) -> [1, O, H, W]
--   local perceptron (training form): repconv<k> for k in reparam_conv_k, each a kxk conv (padding
--       k // 2, groups) on every partition alone (ops/partition_conv2d.lua) + BN, added to the above.
-- Deploy form (switch_to_deploy): avg without its BN (folded into fc1), fc3 with bias, no fc3_bn, no
-- repconv. passes/fold_repmlp.lua turns the first into the second.
--   nn.RepMLP(C, O, H, W, h, w, {reparam_conv_k = nil, fc1_fc2_reduction = 1, fc3_groups = 1,
--                                deploy = false})
return function(nn)
  -- fc3: the partition FC as a module with the reference's keys (weight, and bias when deploy).
  local function PartitionFC(C, O, h, w, groups, bias)
    local m = nn.Module('Conv2d')
    m:param('weight', { O * h * w, C * h * w / groups, 1, 1 })
    if bias then m:param('bias', { O * h * w }) end
    function m:forward(x)
      return nn.record(nn.caller_where(), self._path, 'conv2d', { x }, {
        cin = C, cout = O * h * w, groups = groups, kernel = { h, w }, stride = { h, w }, padding = { 0, 0 },
        dilation = { 1, 1 } }, { weight = self:key('weight'), bias = bias and self:key('bias') or nil })
    end
    return m
  end

  -- repconv<k>.conv: a kxk conv (no bias) on each h x w partition alone.
  local function PartitionConv(C, O, k, h, w, groups)
    local m = nn.Module('Conv2d')
    m:param('weight', { O, C / groups, k, k })
    local p = math.floor(k / 2)
    function m:forward(x)
      return nn.record(nn.caller_where(), self._path, 'partition_conv2d', { x }, {
        cin = C, cout = O, groups = groups, kernel = { k, k }, padding = { p, p }, tile = { h, w } },
        { weight = self:key('weight') })
    end
    return m
  end

  function nn.RepMLP(C, O, H, W, h, w, o)
    o = o or {}
    local m = nn.Module('RepMLP')
    local groups = o.fc3_groups or 1
    local ks = o.reparam_conv_k and nn.plain(o.reparam_conv_k, m._where, 'RepMLP reparam_conv_k')
    local sizes = { C = C, O = O, H = H, W = W, h = h, w = w, fc3_groups = groups }
    for _, n in ipairs({ 'C', 'O', 'H', 'W', 'h', 'w', 'fc3_groups' }) do nn.positive_int(sizes[n], m._where, 'RepMLP ' .. n) end
    if H % h ~= 0 or W % w ~= 0 then
      nn.fail(m._where, string.format('RepMLP: a %dx%d map does not split into %dx%d partitions', H, W, h, w))
    end
    if C % groups ~= 0 or O % groups ~= 0 then
      nn.fail(m._where, string.format('RepMLP fc3_groups=%d must divide in_channels=%d and out_channels=%d', groups, C, O))
    end
    local hp, wp = H / h, W / w
    local global = H ~= h or W ~= w
    if global then
      local n = C * hp * wp
      local internal = math.floor(n / (o.fc1_fc2_reduction or 1))
      m.fc1_fc2 = nn.Sequential()
      m.fc1_fc2:add('fc1', nn.Linear(n, internal))
      m.fc1_fc2:add('relu', nn.ReLU())
      m.fc1_fc2:add('fc2', nn.Linear(internal, n))
      if o.deploy then
        m.avg = nn.AvgPool2d({ h, w })
      else
        m.avg = nn.Sequential()
        m.avg:add('avg', nn.AvgPool2d({ h, w }))
        m.avg:add('bn', nn.BatchNorm2d(C))
      end
    end
    m.fc3 = PartitionFC(C, O, h, w, groups, o.deploy)
    if not o.deploy then
      m.fc3_bn = nn.BatchNorm2d(O * h * w)
      for _, k in ipairs(ks or {}) do
        if nn.positive_int(k, m._where, 'RepMLP reparam_conv_k') % 2 ~= 1 then
          nn.fail(m._where, 'RepMLP reparam_conv_k must be odd kernels, got ' .. k)
        end
        local branch = nn.Sequential()
        branch:add('conv', PartitionConv(C, O, k, h, w, groups))
        branch:add('bn', nn.BatchNorm2d(O))
        m['repconv' .. k] = branch
      end
    end
    function m:forward(x)
      local inputs = x
      if global then
        local v = self.fc1_fc2(nn.flatten(self.avg(x), 1))
        inputs = nn.record(nn.caller_where(), self._path, 'partition_add', { x, v }, { block = { h, w } })
      end
      local f = self.fc3(inputs)
      if self.fc3_bn then f = self.fc3_bn(f) end
      local out = nn.record(nn.caller_where(), self._path, 'depth_to_space', { f }, { block = { h, w } })
      if o.deploy or not ks or #ks == 0 then
        if not o.deploy then
          nn.mark_block(x, out, { kind = 'repmlp', path = self._path, global = global, ks = {}, C = C, O = O,
                                  h = h, w = w, groups = groups })
        end
        return out
      end
      for _, k in ipairs(ks) do out = out + self['repconv' .. k](inputs) end
      nn.mark_block(x, out, { kind = 'repmlp', path = self._path, global = global, ks = ks, C = C, O = O,
                              h = h, w = w, groups = groups })
      return out
    end
    return m
  end
end
