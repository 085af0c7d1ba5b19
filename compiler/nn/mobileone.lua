-- MobileOneBlock (Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023),
-- as apple/ml-mobileone's mobileone.py defines it, with its state_dict keys:
--   training form: rbr_conv.0 .. rbr_conv.{n-1} (n parallel kxk conv + BN branches, the same
--                  stride, padding and groups), rbr_scale (1x1 conv + BN, only when k > 1), rbr_skip
--                  (a BN, only when cin == cout and stride 1); y = ReLU(sum of the branches)
--   deploy form:   reparam_conv (kxk with bias); y = ReLU(reparam_conv(x))
-- passes/fold_mobileone.lua turns the first into the second. The reference pads the scale branch by
-- k // 2 when it converts, so the kernel is odd and the padding k // 2 (the zoo: 3x3 depthwise with
-- padding 1 and 1x1 pointwise with padding 0). With use_se (MobileOne-S4), squeeze-excitation (the
-- reference's SEBlock: se.reduce to C / 16 channels, ReLU, se.expand, sigmoid) gates the sum (or
-- reparam_conv's output) before the ReLU.
--   nn.MobileOneBlock(cin, cout, k, {stride = 1, padding = k // 2, groups = 1, num_conv_branches = 1,
--                                    use_se = false, deploy = false})
return function(nn)
  function nn.MobileOneBlock(cin, cout, k, o)
    o = o or {}
    local m = nn.Module('MobileOneBlock')
    nn.positive_int(k, m._where, 'MobileOneBlock kernel_size')
    local stride, groups = o.stride or 1, o.groups or 1
    local padding = o.padding or math.floor(k / 2)
    local branches = nn.positive_int(o.num_conv_branches or 1, m._where, 'MobileOneBlock num_conv_branches')
    if k % 2 ~= 1 or padding ~= math.floor(k / 2) then
      nn.fail(m._where, string.format('MobileOneBlock needs an odd kernel and padding = kernel // 2 (got kernel %s, padding %s)',
        tostring(k), tostring(padding)))
    end
    if o.use_se then
      m.se = nn.SqueezeExcitation(cout, math.floor(cout * 0.0625), { names = { 'reduce', 'expand' } })
    end
    if o.deploy then
      m.reparam_conv = nn.Conv2d(cin, cout, k, { stride = stride, padding = padding, groups = groups })
      function m:forward(x)
        local y = self.reparam_conv(x)
        return nn.relu(self.se and self.se(y) or y)
      end
      return m
    end
    if cin == cout and stride == 1 then m.rbr_skip = nn.BatchNorm2d(cin) end
    local convs = nn.Module('ModuleList')
    for _ = 1, branches do
      convs:add(nn.ConvBN(cin, cout, k, { stride = stride, padding = padding, groups = groups }))
    end
    m.rbr_conv = convs
    if k > 1 then m.rbr_scale = nn.ConvBN(cin, cout, 1, { stride = stride, groups = groups }) end
    function m:forward(x)
      local sum
      local function plus(y) sum = sum and sum + y or y end
      if self.rbr_scale then plus(self.rbr_scale(x)) end
      if self.rbr_skip then plus(self.rbr_skip(x)) end
      for _, conv in self.rbr_conv:children() do plus(conv(x)) end
      nn.mark_block(x, sum, { kind = 'mobileone', path = self._path, branches = branches,
                              scale = self.rbr_scale ~= nil, identity = self.rbr_skip ~= nil })
      return nn.relu(self.se and self.se(sum) or sum)
    end
    return m
  end
end
