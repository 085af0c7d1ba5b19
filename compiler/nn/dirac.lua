-- DiracNet v2 training-time modules (Zagoruyko & Komodakis, "DiracNets: Training Very Deep Neural
-- Networks Without Skip-Connections", 2017), with the keys of szagoruyko/diracnets' functional
-- define_diracnet, whose state_dict is a flat dict of dotted names:
--   nn.DiracBN(n)                 F.batch_norm over params/stats: weight, bias, running_mean,
--                                 running_var (no num_batches_tracked)
--   nn.DiracBlock(ni, no, o)      one block of a group: params `conv` [no, ni, 3, 3] (no .weight
--                                 suffix), `alpha` [no], `beta` [no], child `bn`;
--                                 y = bn(dirac_conv2d(relu(x)))  (ops/dirac_conv2d.lua, stride 1, pad 1)
--                                 o.eye: the root key of its dirac delta buffer (eye<no>_<ni>_3_3);
--                                 o.deploy: the folded module's conv prefix (features.groupG.blockB.conv)
--   nn.dirac_stem(m, x, o)        the stem conv (root param `conv`, no bias) then m.bn, as a block
--                                 whose deploy name is o.deploy (features.conv)
-- Each block is marked (nn.mark_block, kind 'dirac', info.deploy) so passes/fold_dirac.lua can
-- materialise its weight under the deploy name; the BN is then folded by passes/fold_bn.lua.
return function(nn)
  function nn.DiracBN(n)
    local m = nn.Module('DiracBN')
    nn.positive_int(n, m._where, 'DiracBN num_features')
    m:param('weight', { n }); m:param('bias', { n })
    m:param('running_mean', { n }, { buffer = true })
    m:param('running_var', { n }, { buffer = true })
    function m:forward(x)
      return nn.record(nn.caller_where(), self._path, 'batchnorm', { x }, { n = n, eps = 1e-5, ranks = { [4] = true } }, {
        weight = self:key('weight'), bias = self:key('bias'),
        running_mean = self:key('running_mean'), running_var = self:key('running_var'),
      })
    end
    return m
  end

  local function conv_attrs(cin, cout, k, stride, padding)
    return { cin = cin, cout = cout, groups = 1, kernel = { k, k }, stride = { stride, stride },
             padding = { padding, padding }, dilation = { 1, 1 } }
  end

  function nn.DiracBlock(ni, no, o)
    local m = nn.Module('DiracBlock')
    nn.positive_int(ni, m._where, 'DiracBlock in_channels'); nn.positive_int(no, m._where, 'DiracBlock out_channels')
    if type(o) ~= 'table' then nn.fail(m._where, 'DiracBlock needs {eye = KEY, deploy = PREFIX}') end
    local eye = nn.key_name(o.eye, m._where, 'DiracBlock eye')
    local deploy = nn.key_name(o.deploy, m._where, 'DiracBlock deploy')
    m:param('conv', { no, ni, 3, 3 })
    m:param('alpha', { no })
    m:param('beta', { no })
    m.bn = nn.DiracBN(no)
    function m:forward(x)
      local y = nn.record(nn.caller_where(), self:key('conv'), 'dirac_conv2d', { nn.relu(x) }, conv_attrs(ni, no, 3, 1, 1), {
        weight = self:key('conv'), alpha = self:key('alpha'), beta = self:key('beta'), eye = eye,
      })
      y = self.bn(y)
      nn.mark_block(x, y, { kind = 'dirac', path = self._path, deploy = deploy })
      return y
    end
    return m
  end

  -- The stem of the functional model m (params m.conv [cout, 3, k, k] as key `conv`, child m.bn):
  -- o = {cin, cout, kernel, stride, padding, deploy}.
  function nn.dirac_stem(m, x, o)
    local where = nn.caller_where()
    if not nn.is_module(m) or type(o) ~= 'table' then nn.fail(where, 'dirac_stem needs a module and {cin, cout, ...}') end
    for _, f in ipairs({ 'cin', 'cout', 'kernel', 'stride' }) do nn.positive_int(o[f], where, 'dirac_stem ' .. f) end
    nn.int(o.padding, where, 'dirac_stem padding', 0)
    nn.key_name(o.deploy, where, 'dirac_stem deploy')
    local key = m:key('conv')
    local y = nn.record(nn.caller_where(), key, 'conv2d', { x }, conv_attrs(o.cin, o.cout, o.kernel, o.stride, o.padding),
      { weight = key })
    y = m.bn(y)
    nn.mark_block(x, y, { kind = 'dirac', path = m._path, deploy = o.deploy, stem = true })
    return y
  end
end
