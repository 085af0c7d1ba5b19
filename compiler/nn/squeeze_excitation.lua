-- Squeeze-and-excitation (Hu et al., "Squeeze-and-Excitation Networks", CVPR 2018), with the keys of
-- torchvision's ops.SqueezeExcitation and timm's SEModule (fc1, fc2: 1x1 convs with bias):
--   s = scale_activation(fc2(activation(fc1(mean_{h,w} x))))     [1, C, 1, 1]
--   y = x * s                                                     (ops/channel_gate.lua)
--   nn.SqueezeExcitation(C, squeeze, {activation = 'relu', scale_activation = 'sigmoid',
--     names = {'fc1', 'fc2'}}): activation names of compiler/activations.lua (EfficientNet: silu;
--     MobileNetV3: hardsigmoid gates); names: the two convs' (MobileOne's SEBlock: reduce, expand)
--   nn.channel_gate(x, s)  the gate alone
return function(nn)
  local activations = require 'activations'
  local ops = require 'ops'

  function nn.channel_gate(x, s)
    return nn.record(nn.caller_where(), nil, 'channel_gate', { x, s })
  end

  local function act_name(v, where, what)
    local ok = pcall(activations.get, v)
    if not ok then nn.fail(where, 'SqueezeExcitation ' .. what .. ' must name an activation, got ' .. ops.show(v)) end
    return v
  end

  function nn.SqueezeExcitation(c, squeeze, o)
    o = o or {}
    local m = nn.Module('SqueezeExcitation')
    local act = act_name(o.activation or 'relu', m._where, 'activation')
    local gate = act_name(o.scale_activation or 'sigmoid', m._where, 'scale_activation')
    local names = nn.plain(o.names or { 'fc1', 'fc2' }, m._where, 'SqueezeExcitation names')
    m:add(names[1], nn.Conv2d(c, squeeze, 1))
    m:add(names[2], nn.Conv2d(squeeze, c, 1))
    function m:forward(x)
      local where = nn.caller_where()
      local s = self[names[1]](nn.adaptive_avg_pool2d(x, 1))
      s = nn.record(where, self._path, 'act', { s }, { act = act })
      s = nn.record(where, self._path, 'act', { self[names[2]](s) }, { act = gate })
      return nn.record(where, self._path, 'channel_gate', { x, s })
    end
    return m
  end
end
