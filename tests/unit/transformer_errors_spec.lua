-- Bad transformer descriptions and checkpoints fail with an error naming the module and the key.
local nn = require 'nn'
local pit = require 'models.pit'
local bind = require 'bind'
local tensor = require 'tensor'

local function trace_error(build, input)
  local ok, err = pcall(function() return nn.trace(build(), input, 'bad') end)
  assert.is_false(ok)
  return tostring(err)
end

local function small_pit(o)
  local cfg = { img = 40, patch = 8, stride = 4, base_dims = { 8, 8 }, depth = { 1, 2 }, heads = { 2, 4 },
                num_classes = 10 }
  for k, v in pairs(o or {}) do cfg[k] = v end
  return function() return pit.pit(cfg) end
end

describe('transformer errors', function()
  it('names the attention whose head count does not divide its width', function()
    local err = trace_error(function()
      local m = nn.Module('M')
      m.attn = nn.Attention(64, 5)
      function m:forward(x) return self.attn(x) end
      return m
    end, { 1, 10, 64 })
    assert.matches('attn: num_heads=5 does not divide dim=64', err, 1, true)
  end)

  it('names the max-pool mixer whose tokens do not form a square grid', function()
    local err = trace_error(function()
      local m = nn.Module('M')
      m.block = pit.Block(16, 2, 4, 'max', true)
      function m:forward(x) return self.block(x) end
      return m
    end, { 1, 50, 16 })
    assert.matches('block.attn: 50 tokens do not form a square grid', err, 1, true)
  end)

  it('says which grid pos_embed has when the patch embedding gives another', function()
    local err = trace_error(small_pit(), { 1, 3, 48, 48 })
    assert.matches('pos_embed: a 9x9 grid, but the patch embedding gives 11x11', err, 1, true)
  end)

  it('names pos_embed when a checkpoint has another grid', function()
    local g = nn.trace(small_pit()(), { 1, 3, 40, 40 }, 'pit_small')
    local w = bind.random_weights(g, 1)
    w.tensors.pos_embed = tensor.new({ 1, 16, 7, 7 })
    local ok, err = pcall(bind.bind, g, w, 'ckpt')
    assert.is_false(ok)
    assert.matches('pos_embed: expected 1x16x9x9, found 1x16x7x7', err, 1, true)
  end)

  it('rejects a token map of the wrong grid', function()
    local err = trace_error(function()
      local m = nn.Module('M')
      function m:forward(x) return nn.token_map(x, 5, 5) end
      return m
    end, { 1, 24, 8 })
    assert.matches('24 tokens do not form a 5x5 grid', err, 1, true)
  end)
end)
