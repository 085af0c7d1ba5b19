-- DiverseBranchBlock (Ding et al., "Diverse Branch Block: Building a Convolution as an
-- Inception-like Unit", CVPR 2021), as DingXiaoH/DiverseBranchBlock's diversebranchblock.py
-- defines it, with its state_dict keys. Training form, four branches summed, then the optional ReLU:
--   dbb_origin   kxk conv + BN (stride s, padding p = k // 2, groups g)
--   dbb_1x1      1x1 conv + BN (stride s)                                  (only when g < cout)
--   dbb_avg      1x1 conv, BNAndPad(p), kxk avg-pool (stride s), avgbn     (g < cout)
--                or kxk avg-pool (stride s, padding p), avgbn              (depthwise)
--   dbb_1x1_kxk  idconv1 (1x1 whose weight gets the identity added at run time; conv1 when the
--                internal width is not cin), BNAndPad(p) as bn1, kxk conv2 (stride s, unpadded), bn2
-- BNAndPadLayer pads BN's output with the value BN gives a zero input, i.e. it is BN(zero-pad(x)),
-- recorded so (ops/pad2d.lua then a BN under the key prefix `bn`). Deploy form: dbb_reparam (kxk
-- conv with bias). passes/fold_dbb.lua turns the first into the second.
--   nn.DiverseBranchBlock(cin, cout, k, {stride = 1, padding = k // 2, groups = 1, relu = false,
--                                        internal = nil, deploy = false})
return function(nn)
  local function BNAndPad(pad, n)
    local m = nn.Module('BNAndPadLayer')
    m.bn = nn.BatchNorm2d(n)
    function m:forward(x)
      if pad > 0 then x = nn.record(nn.caller_where(), self._path, 'pad2d', { x }, { pad = pad }) end
      return self.bn(x)
    end
    return m
  end

  -- IdentityBasedConv1x1, a Conv2d subclass (own key `weight`): conv(x, W + I) = conv(x, W) + x,
  -- I the grouped identity kernel.
  local function IdentityBasedConv1x1(channels, groups)
    local m = nn.Module('IdentityBasedConv1x1')
    nn.positive_int(channels, m._where, 'IdentityBasedConv1x1 channels')
    nn.positive_int(groups, m._where, 'IdentityBasedConv1x1 groups')
    if channels % groups ~= 0 then
      nn.fail(m._where, string.format('IdentityBasedConv1x1 groups=%d must divide channels=%d', groups, channels))
    end
    m:param('weight', { channels, channels / groups, 1, 1 })
    function m:forward(x)
      local y = nn.record(nn.caller_where(), self._path, 'conv2d', { x }, {
        cin = channels, cout = channels, groups = groups, kernel = { 1, 1 }, stride = { 1, 1 },
        padding = { 0, 0 }, dilation = { 1, 1 } }, { weight = self:key('weight') })
      return y + x
    end
    return m
  end

  function nn.DiverseBranchBlock(cin, cout, k, o)
    o = o or {}
    local m = nn.Module('DiverseBranchBlock')
    nn.positive_int(k, m._where, 'DiverseBranchBlock kernel_size')
    local stride, groups = o.stride or 1, o.groups or 1
    local padding = o.padding or math.floor(k / 2)
    local relu = o.relu
    local function finish(y) return relu and nn.relu(y) or y end
    if padding ~= math.floor(k / 2) then
      nn.fail(m._where, string.format('DiverseBranchBlock needs padding = kernel // 2 (got kernel %d, padding %d)', k, padding))
    end
    if o.deploy then
      m.dbb_reparam = nn.Conv2d(cin, cout, k, { stride = stride, padding = padding, groups = groups })
      function m:forward(x) return finish(self.dbb_reparam(x)) end
      return m
    end
    m.dbb_origin = nn.ConvBN(cin, cout, k, { stride = stride, padding = padding, groups = groups })
    local avg = nn.Sequential()
    if groups < cout then
      avg:add('conv', nn.Conv2d(cin, cout, 1, { groups = groups, bias = false }))
      avg:add('bn', BNAndPad(padding, cout))
      avg:add('avg', nn.AvgPool2d(k, { stride = stride, padding = 0 }))
      m.dbb_1x1 = nn.ConvBN(cin, cout, 1, { stride = stride, groups = groups })
    else
      avg:add('avg', nn.AvgPool2d(k, { stride = stride, padding = padding }))
    end
    avg:add('avgbn', nn.BatchNorm2d(cout))
    m.dbb_avg = avg
    local internal = nn.positive_int(o.internal or (groups < cout and cin or 2 * cin), m._where,
      'DiverseBranchBlock internal channels')
    local seq = nn.Sequential()
    if internal == cin then
      seq:add('idconv1', IdentityBasedConv1x1(cin, groups))
    else
      seq:add('conv1', nn.Conv2d(cin, internal, 1, { groups = groups, bias = false }))
    end
    seq:add('bn1', BNAndPad(padding, internal))
    seq:add('conv2', nn.Conv2d(internal, cout, k, { stride = stride, groups = groups, bias = false }))
    seq:add('bn2', nn.BatchNorm2d(cout))
    m.dbb_1x1_kxk = seq
    function m:forward(x)
      local sum = self.dbb_origin(x)
      if self.dbb_1x1 then sum = sum + self.dbb_1x1(x) end
      sum = sum + self.dbb_avg(x)
      sum = sum + self.dbb_1x1_kxk(x)
      nn.mark_block(x, sum, { kind = 'dbb', path = self._path, identity_1x1 = internal == cin,
                                has_1x1 = self.dbb_1x1 ~= nil })
      return finish(sum)
    end
    return m
  end
end
