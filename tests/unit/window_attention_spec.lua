-- Windowed attention (ops/attention.lua with attrs.window) and Swin's description: the buffers the
-- reference recomputes are optional and checked when given (timm's attn_mask), maps the windows do
-- not tile and odd maps before a patch merging are padded (torchvision) or refused naming the line
-- (timm), and the interpreter's
-- windows are the reference's (a shifted window with the mask is the same as rolling the map,
-- attending per window and rolling back).
local nn = require 'nn'
local bind = require 'bind'
local swin = require 'models.swin'
local interpreter = require 'interpreter'
local tensor = require 'tensor'
local attention = require 'ops.attention'

local function tiny(flavor, img, window)
  return swin.swin({ flavor = flavor, img = img, patch = 4, embed_dim = 8, depths = { 2, 2 }, heads = { 2, 2 },
                     window = window or 4, num_classes = 5 })
end

local function trace_error(build, input)
  local ok, err = pcall(function() return nn.trace(build(), input, 'bad') end)
  assert.is_false(ok)
  return tostring(err)
end

describe('windowed attention', function()
  it('takes a timm checkpoint with or without its recomputed buffers', function()
    local g = nn.trace(tiny('timm', 32), { 1, 3, 32, 32 }, 'swin_tiny_test')
    local keys = {}
    for _, s in ipairs(g.param_specs) do keys[s.key] = s end
    assert.is_true(keys['layers.0.blocks.1.attn_mask'].optional)
    assert.is_true(keys['layers.0.blocks.0.attn.relative_position_index'].optional)
    assert.are.same({ 16, 16 }, keys['layers.0.blocks.0.attn.relative_position_index'].shape)
    assert.is_nil(keys['layers.0.blocks.0.attn_mask']) -- not shifted: no mask (timm registers None)
    assert.is_nil(keys['layers.1.blocks.1.attn_mask']) -- a 4x4 map in 4x4 windows: no shift
    local w = bind.random_weights(g, 1)
    assert.is_nil(w.tensors['layers.0.blocks.1.attn_mask'])
    bind.bind(g, w, 'random')
    interpreter.run(g, tensor.new({ 1, 3, 32, 32 }))
  end)

  it('refuses an attn_mask that is not the shifted windows\' mask, by key and place', function()
    local g = nn.trace(tiny('timm', 32), { 1, 3, 32, 32 }, 'swin_tiny_test')
    local w = bind.random_weights(g, 1)
    local mask = tensor.new({ 4, 16, 16 })
    w.names[#w.names + 1] = 'layers.0.blocks.1.attn_mask'
    w.tensors['layers.0.blocks.1.attn_mask'] = mask -- all zeros: the last windows' masks are missing
    bind.bind(g, w, 'ckpt')
    local ok, err = pcall(interpreter.run, g, tensor.new({ 1, 3, 32, 32 }))
    assert.is_false(ok)
    assert.matches('layers.0.blocks.1.attn_mask: [1, 0, 2] is 0, not the shifted-window mask (-100)', tostring(err), 1, true)
  end)

  it('refuses, for timm, a map the windows do not tile, naming the line', function()
    local err = trace_error(function() return tiny('timm', 40) end, { 1, 3, 40, 40 })
    assert.matches('swin.lua:%d+: swin %(timm%): stage 1\'s 10x10 token map is no multiple of the 4x4 window', err)
  end)

  it('refuses, for timm, an odd map before a patch merging', function()
    local err = trace_error(function() return tiny('timm', 36, 3) end, { 1, 3, 36, 36 })
    assert.matches('stage 1\'s 9x9 token map is odd before the patch merging', err, 1, true)
  end)

  it('pads torchvision\'s maps to the window and crops them back, merges odd maps', function()
    -- 10x10 in 4x4 windows: padded to 12x12 before qkv, cropped before proj; 9x9 in 3x3 windows
    -- (no pad) merged as 10x10 into 5x5
    local g = nn.trace(tiny('torchvision', 40), { 1, 3, 40, 40 }, 'swin_pad_test')
    local pads, attn = {}, {}
    for _, n in ipairs(g.nodes) do
      if n.op == 'pad_tokens' then pads[#pads + 1] = string.format('%dx%d->%dx%d', n.attrs.h, n.attrs.w, n.attrs.out_h, n.attrs.out_w) end
      if n.op == 'attention' then attn[#attn + 1] = table.concat(n.attrs.window.map, 'x') end
    end
    -- stage 1 (10x10, two blocks) padded; stage 2's 5x5 map in 4x4 windows: padded to 8x8
    assert.are.same({ '10x10->12x12', '12x12->10x10', '10x10->12x12', '12x12->10x10',
                      '5x5->8x8', '8x8->5x5', '5x5->8x8', '8x8->5x5' }, pads)
    assert.are.same({ '12x12', '12x12', '8x8', '8x8' }, attn)
    local w = bind.random_weights(g, 1)
    bind.bind(g, w, 'random')
    interpreter.run(g, tensor.new({ 1, 3, 40, 40 }))
    local g9 = nn.trace(tiny('torchvision', 36, 3), { 1, 3, 36, 36 }, 'swin_odd_test')
    bind.bind(g9, bind.random_weights(g9, 1), 'random')
    assert.are.same({ 1, 5 }, interpreter.run(g9, tensor.new({ 1, 3, 36, 36 }))[1].shape)
  end)

  it('pads and crops token maps, zeros below and right (F.pad)', function()
    local pad = require 'ops.pad_tokens'
    local merge = require 'ops.merge_patches'
    -- a 2x3 map of 2 channels: token (y, x) channel c = 100 y + 10 x + c + 1
    local x = tensor.new({ 1, 6, 2 })
    for y = 0, 1 do for xx = 0, 2 do for c = 0, 1 do x.data[(y * 3 + xx) * 2 + c] = 100 * y + 10 * xx + c + 1 end end end
    local function run(op, attrs, input, shape)
      local node = { attrs = attrs, params = {}, outputs = { { shape = shape } } }
      return op.eval(node, { input })
    end
    local y = run(pad, { h = 2, w = 3, out_h = 3, out_w = 4 }, x, { 1, 12, 2 })
    local got = {}
    for i = 0, 23 do got[i + 1] = y.data[i] end
    assert.are.same({ 1, 2, 11, 12, 21, 22, 0, 0,
                      101, 102, 111, 112, 121, 122, 0, 0,
                      0, 0, 0, 0, 0, 0, 0, 0 }, got)
    local back = run(pad, { h = 3, w = 4, out_h = 2, out_w = 3 }, y, { 1, 6, 2 })
    for i = 0, 11 do assert.are.equal(x.data[i], back.data[i]) end
    -- an odd 2x3 map merged: 1x2 tokens of 4 neighbours, the third column's right neighbours 0
    local m = run(merge, { h = 2, w = 3 }, x, { 1, 2, 8 })
    got = {}
    for i = 0, 15 do got[i + 1] = m.data[i] end
    assert.are.same({ 1, 2, 101, 102, 11, 12, 111, 112,
                      21, 22, 121, 122, 0, 0, 0, 0 }, got)
  end)

  it('places window tokens as the reference: partition, roll, grid', function()
    local a = { window = { map = { 6, 8 }, size = { 3, 4 }, shift = { 1, 2 } } }
    local n, nw, token = attention.windows(a, 48)
    assert.are.equal(12, n)
    assert.are.equal(4, nw)
    -- window 0's first token is the rolled map's (0, 0): the map's (1, 2); window 3's last token
    -- wraps to (0, 1) (rolled (5, 7) -> (6 mod 6, 9 mod 8))
    assert.are.equal(1 * 8 + 2, token(0, 0))
    assert.are.equal(0 * 8 + 1, token(11, 3))
    -- a grid (MaxViT): 2x2 windows of tokens 3 and 4 apart on a 6x8 map
    local _, gw, gt = attention.windows({ window = { map = { 6, 8 }, size = { 2, 2 }, dilation = { 3, 4 } } }, 48)
    assert.are.equal(12, gw)
    assert.are.same({ 0, 4, 24, 28 }, { gt(0, 0), gt(1, 0), gt(2, 0), gt(3, 0) })
    assert.are.same({ 8 + 1, 8 + 5, 32 + 1, 32 + 5 }, { gt(0, 5), gt(1, 5), gt(2, 5), gt(3, 5) })
  end)
end)
