-- Training-time blocks that a structural fold replaces by one plain layer (RepVGG, ACB, DBB, Dirac,
-- RepMLP; see compiler/passes/fold_*.lua). Such a block's forward() records its branches with the
-- ordinary ops, so the reference interpreter runs the training form exactly as PyTorch does, then
-- calls nn.mark_block(input, output, info): every node between the block's input and the output it
-- returns gets node.block = info (kind, module path and geometry), which is all a fold needs to find
-- the block, read its parameters by their state_dict keys and name the deploy layer as the
-- reference conversion does.
--
-- nn.ConvBN(cin, cout, k, o) is the reference repos' conv_bn(): children `conv` (no bias) and `bn`;
-- o.relu adds a ReLU after (convnet_utils' conv_bn_relu); o.deploy makes it the converted form, a
-- conv with bias and no BN (what fold_bn turns the training form into, under the same keys).
return function(nn)
  function nn.mark_block(input, output, info)
    local where = nn.caller_where()
    input = nn.tensor_of(where, input, 'block input')
    output = nn.tensor_of(where, output, 'block output')
    info = nn.plain(info, where, 'block info')
    if output == input then nn.fail(where, (info.path or info.kind) .. ': block records no nodes') end
    local seen = {}
    local function visit(t)
      if t == input then return end
      local node = t.producer
      if not node then
        nn.fail(where, (info.path or info.kind) .. ': block output does not depend on its input only')
      end
      if seen[node] then return end
      seen[node] = true
      node.block = info
      for _, x in ipairs(node.inputs) do visit(x) end
    end
    visit(output)
  end

  function nn.ConvBN(cin, cout, k, o)
    o = o or {}
    local m = nn.Module('ConvBN')
    m:add('conv', nn.Conv2d(cin, cout, k, { stride = o.stride, padding = o.padding, dilation = o.dilation,
                                            groups = o.groups, bias = o.deploy == true }))
    if not o.deploy then m:add('bn', nn.BatchNorm2d(cout)) end
    local relu = o.relu
    function m:forward(x)
      local y = self.conv(x)
      if self.bn then y = self.bn(y) end
      return relu and nn.relu(y) or y
    end
    return m
  end

  -- torchvision's Conv2dNormActivation: a Sequential of 0 (conv, padding (k - 1) / 2, no bias),
  -- 1 (BatchNorm2d, eps o.eps) and, when o.act names one (compiler/activations.lua), 2 (the activation).
  function nn.Conv2dNormActivation(cin, cout, k, o)
    o = o or {}
    local s = nn.Sequential()
    s:add(nn.Conv2d(cin, cout, k, { stride = o.stride, padding = math.floor((k - 1) / 2), groups = o.groups, bias = false }))
    s:add(nn.BatchNorm2d(cout, { eps = o.eps }))
    if o.act then
      local e = require('activations').get(o.act)
      s:add(nn[e.module](e.options))
    end
    return s
  end

  -- torchvision's and timm's _make_divisible(v, 8): the nearest multiple of 8, at least 8, and not
  -- below 0.9 v (channel widths times a width multiplier).
  function nn.make_divisible(v)
    local n = math.max(8, math.floor(v + 4) - math.floor(v + 4) % 8)
    if n < 0.9 * v then n = n + 8 end
    return n
  end

  -- The DingXiaoH / apple nets' trunk and head: m.stage0 .. m.stage4 in sequence, then a global
  -- average pool `gap` and a Linear `linear` (channels -> num_classes, 1000 by default).
  function nn.staged_classifier(m, channels, num_classes)
    m.gap = nn.AdaptiveAvgPool2d(1)
    m.linear = nn.Linear(channels, num_classes or 1000)
    function m:forward(x)
      x = self.stage4(self.stage3(self.stage2(self.stage1(self.stage0(x)))))
      return self.linear(nn.flatten(self.gap(x), 1))
    end
  end

  -- Reduced test models: w(n) = n / div, refused at the model's line when div does not divide n.
  function nn.width_divider(m, name, div)
    div = div or 1
    return function(n)
      if n % div ~= 0 then nn.fail(m._where, name .. ': width_div ' .. div .. ' does not divide ' .. n) end
      return n / div
    end
  end
end
