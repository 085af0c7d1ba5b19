-- Windowed attention (ops/attention.lua with attrs.window) and Swin's description: the buffers the
-- reference recomputes are optional and checked when given (timm's attn_mask), maps the windows do
-- not tile and odd maps before a patch merging are refused naming the line, and the interpreter's
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

  it('refuses a map the windows do not tile, naming the line', function()
    local err = trace_error(function() return tiny('torchvision', 40) end, { 1, 3, 40, 40 })
    assert.matches('swin.lua:%d+: .*4x4 windows .* do not tile the 10x10 map', err)
  end)

  it('refuses an odd map before a patch merging', function()
    local err = trace_error(function() return tiny('torchvision', 36, 3) end, { 1, 3, 36, 36 })
    assert.matches('a 9x9 map does not split into 2x2 neighbourhoods', err, 1, true)
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
