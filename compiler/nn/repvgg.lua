-- RepVGGBlock (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021), as
-- DingXiaoH/RepVGG defines it, with its state_dict keys:
--   training form: rbr_dense (conv3x3 pad 1 + BN), rbr_1x1 (conv1x1 + BN), rbr_identity (a BN, only
--                  when cin == cout and stride 1); y = ReLU(dense(x) + 1x1(x) [+ identity(x)])
--   deploy form:   rbr_reparam (conv3x3 with bias); y = ReLU(rbr_reparam(x))
-- passes/fold_repvgg.lua turns the first into the second.
-- The zoo uses kernel 3, padding 1; like the reference (padding_11 = padding - kernel // 2), other
-- odd kernels and paddings of at least kernel // 2 work too.
--   nn.RepVGGBlock(cin, cout, {kernel = 3, padding = kernel // 2, stride = 1, groups = 1, deploy = false})
return function(nn)
  function nn.RepVGGBlock(cin, cout, o)
    o = o or {}
    local k, stride, groups = o.kernel or 3, o.stride or 1, o.groups or 1
    local padding = o.padding or math.floor(k / 2)
    local m = nn.Module('RepVGGBlock')
    nn.positive_int(k, m._where, 'RepVGGBlock kernel'); nn.int(padding, m._where, 'RepVGGBlock padding', 0)
    if k % 2 ~= 1 or padding < math.floor(k / 2) then
      nn.fail(m._where, string.format('RepVGGBlock needs an odd kernel and padding >= kernel // 2 (got kernel %s, padding %s)',
        tostring(k), tostring(padding)))
    end
    if o.deploy then
      m.rbr_reparam = nn.Conv2d(cin, cout, k, { stride = stride, padding = padding, groups = groups })
      function m:forward(x) return nn.relu(self.rbr_reparam(x)) end
      return m
    end
    if cin == cout and stride == 1 then m.rbr_identity = nn.BatchNorm2d(cin) end
    m.rbr_dense = nn.ConvBN(cin, cout, k, { stride = stride, padding = padding, groups = groups })
    m.rbr_1x1 = nn.ConvBN(cin, cout, 1, { stride = stride, padding = padding - math.floor(k / 2), groups = groups })
    function m:forward(x)
      local sum = self.rbr_dense(x) + self.rbr_1x1(x)
      if self.rbr_identity then sum = sum + self.rbr_identity(x) end
      nn.mark_block(x, sum, { kind = 'repvgg', path = self._path, identity = self.rbr_identity ~= nil })
      return nn.relu(sum)
    end
    return m
  end
end
