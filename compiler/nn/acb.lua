-- ACBlock (Ding et al., "ACNet: Strengthening the Kernel Skeletons for Powerful CNN via Asymmetric
-- Convolution Blocks", ICCV 2019), as DingXiaoH/DiverseBranchBlock's acb.py defines it, with its
-- state_dict keys:
--   training form: square_conv (kxk) + square_bn, ver_conv (kx1) + ver_bn, hor_conv (1xk) + hor_bn,
--                  summed, then the optional ReLU. With c = k // 2 and padding p >= c the kx1 conv is
--                  padded (p, p - c) and the 1xk (p - c, p); with p = 0 (the reference's CropLayer
--                  case, p - c < 0) their inputs are cropped by c columns / rows instead.
--   deploy form:   fused_conv (kxk with bias)
-- passes/fold_acb.lua turns the first into the second.
--   nn.ACBlock(cin, cout, k, {stride = 1, padding = 0, groups = 1, relu = false, deploy = false})
return function(nn)
  function nn.ACBlock(cin, cout, k, o)
    o = o or {}
    local stride, padding, groups = o.stride or 1, o.padding or 0, o.groups or 1
    local m = nn.Module('ACBlock')
    nn.positive_int(k, m._where, 'ACBlock kernel_size'); nn.int(padding, m._where, 'ACBlock padding', 0)
    local relu = o.relu
    local function finish(y) return relu and nn.relu(y) or y end
    if o.deploy then
      m.fused_conv = nn.Conv2d(cin, cout, k, { stride = stride, padding = padding, groups = groups })
      function m:forward(x) return finish(self.fused_conv(x)) end
      return m
    end
    local c = math.floor(k / 2)
    local offset = padding - c
    if k % 2 ~= 1 or (offset < 0 and padding ~= 0) then
      nn.fail(m._where, string.format('ACBlock needs an odd kernel and padding 0 or >= kernel // 2 (got kernel %d, padding %d)',
        k, padding))
    end
    local crop = offset < 0 and c or 0
    local pad_near = math.max(offset, 0)
    m.square_conv = nn.Conv2d(cin, cout, k, { stride = stride, padding = padding, groups = groups, bias = false })
    m.square_bn = nn.BatchNorm2d(cout)
    m.ver_conv = nn.Conv2d(cin, cout, { k, 1 }, { stride = stride, padding = { crop > 0 and 0 or padding, pad_near },
                                                 groups = groups, bias = false })
    m.hor_conv = nn.Conv2d(cin, cout, { 1, k }, { stride = stride, padding = { pad_near, crop > 0 and 0 or padding },
                                                 groups = groups, bias = false })
    m.ver_bn = nn.BatchNorm2d(cout)
    m.hor_bn = nn.BatchNorm2d(cout)
    function m:forward(x)
      local where = nn.caller_where()
      local ver_in, hor_in = x, x
      if crop > 0 then
        ver_in = nn.record(where, self._path, 'crop2d', { x }, { rows = 0, cols = crop })
        hor_in = nn.record(where, self._path, 'crop2d', { x }, { rows = crop, cols = 0 })
      end
      local sum = self.square_bn(self.square_conv(x)) + self.ver_bn(self.ver_conv(ver_in))
      sum = sum + self.hor_bn(self.hor_conv(hor_in))
      nn.mark_block(x, sum, { kind = 'acb', path = self._path })
      return finish(sum)
    end
    return m
  end
end
