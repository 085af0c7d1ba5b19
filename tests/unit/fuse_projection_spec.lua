-- fuse_projection is exact: a block's last conv plus its 1x1 projection shortcut, run in the
-- reference interpreter before and after (fold_bn, fuse_projection, fuse_epilogue) on random inputs
-- with random BN statistics, agree to fp32 rounding, over main-conv kernels and strides, shortcut
-- strides, channel counts, operand order and a trailing ReLU; and it leaves alone what it must not
-- fuse (a Winograd candidate, padded 1x1 convs, a conv output used twice).
local nn = require 'nn'
local cases = require 'tests.unit.reparam_cases'
local fold_bn = require 'passes.fold_bn'
local fuse_projection = require 'passes.fuse_projection'
local fuse_epilogue = require 'passes.fuse_epilogue'

local PASSES = { fold_bn, fuse_projection, fuse_epilogue }

-- y = [relu](bn_a(conv_a(x')) + bn_b(conv_b(x))), x' = x through a 3x3 stem conv (a block's
-- earlier layers), conv_b the shortcut.
local function block(o)
  local m = nn.Module('Block')
  m.stem = nn.Conv2d(o.cin, o.mid, 3, { stride = o.stem_stride or 1, padding = 1, bias = false })
  m.conv_a = nn.Conv2d(o.mid, o.cout, o.k, { stride = o.stride_a, padding = o.pad_a or (o.k - 1) / 2, bias = false })
  m.bn_a = nn.BatchNorm2d(o.cout)
  m.conv_b = nn.Conv2d(o.cin, o.cout, 1, { stride = o.stride_b, padding = o.pad_b or 0, groups = o.groups_b or 1,
                                            bias = false })
  m.bn_b = nn.BatchNorm2d(o.cout)
  function m:forward(x)
    local h = self.stem(x)
    local a, b = self.bn_a(self.conv_a(h)), self.bn_b(self.conv_b(x))
    local y = o.swap and (b + a) or (a + b)
    if o.share then y = y + a end
    return o.relu and nn.relu(y) or y
  end
  return m
end

local function run(o, seed)
  return cases.before_after(cases.wrap(block(o)), { 1, o.cin, o.h or 9, o.w or 11 }, seed, PASSES)
end

describe('fuse_projection', function()
  local seed = 10
  for _, k in ipairs({ 1, 3 }) do
    for _, stride in ipairs({ 1, 2 }) do
      for _, ch in ipairs({ { 8, 4, 16 }, { 6, 12, 24 } }) do
        for _, swap in ipairs({ false, true }) do
          for _, relu in ipairs({ false, true }) do
            do -- (fewer than 16 channels: no conv here is a Winograd candidate)
              seed = seed + 1
              local s = seed
              local o = { k = k, stride_a = stride, stride_b = stride, cin = ch[1], mid = ch[2], cout = ch[3],
                          swap = swap, relu = relu }
              it(string.format('main %dx%d s%d, shortcut 1x1 s%d, %d/%d->%d%s%s', k, k, stride, stride, ch[2],
                ch[1], ch[3], swap and ', shortcut first' or '', relu and ', relu' or ''), function()
                local rel, after = run(o, s)
                assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
                assert.are.equal(1, cases.count(after, 'conv2d_proj'))
                assert.are.equal(0, cases.count(after, 'add'))
                assert.are.equal(0, cases.count(after, 'act'))
                local node
                for _, n in ipairs(after.nodes) do if n.op == 'conv2d_proj' then node = n end end
                assert.are.equal('block.conv_a+conv_b', node.module)
                assert.are.equal(relu, node.attrs.act == 'relu')
              end)
            end
          end
        end
      end
    end
  end

  it('takes the strided one of two 1x1 convs as the shortcut', function()
    local o = { k = 1, stride_a = 1, stride_b = 2, stem_stride = 2, cin = 8, mid = 8, cout = 16, h = 10, w = 10 }
    local rel, after = run(o, 3)
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
    assert.are.equal(1, cases.count(after, 'conv2d_proj'))
    for _, n in ipairs(after.nodes) do
      if n.op == 'conv2d_proj' then assert.are.same({ 2, 2 }, n.attrs.proj.stride) end
    end
  end)

  it('makes a grouped 1x1 conv the main conv and the dense one the projection', function()
    local o = { k = 1, stride_a = 1, stride_b = 1, groups_b = 2, cin = 8, mid = 8, cout = 16 }
    local rel, after = run(o, 5)
    assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
    for _, n in ipairs(after.nodes) do
      if n.op == 'conv2d_proj' then assert.are.equal('block.conv_b+conv_a', n.module) end
    end
    assert.are.equal(1, cases.count(after, 'conv2d_proj'))
  end)

  local kept = {
    { 'a stride-1 3x3 main conv (Winograd candidate)', { k = 3, stride_a = 1, stride_b = 1, mid = 16 } },
    { 'a padded shortcut', { k = 1, stride_a = 1, stride_b = 1, pad_b = 1, pad_a = 1 } },
    { 'a conv output with another use', { k = 1, stride_a = 1, stride_b = 1, share = true } },
  }
  for i, c in ipairs(kept) do
    it('leaves ' .. c[1] .. ' to fuse_epilogue', function()
      local o = c[2]
      o.cin, o.mid, o.cout = 8, o.mid or 8, 16
      local rel, after = run(o, 40 + i)
      assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
      assert.are.equal(0, cases.count(after, 'conv2d_proj'))
    end)
  end
end)
