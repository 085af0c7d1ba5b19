-- MaxViT (models/maxvit.lua): maxvit_t's parameters and MACs are the reference's, and a map that
-- does not split into its partitions is refused at trace time, naming the layer. The reference
-- header (../shared/models/maxvit_t.keys.txt) counts 30919624 parameters and 5381025792 MACs of
-- convs and Linears (its counter does not see torchvision's einsum); foldc counts attention too:
-- q k^T and P v in every window of every block and grid layer, 2 N P^2 C per layer for N tokens,
-- P^2 = 49 a window and C channels.
local zoo = require 'zoo'
local tensor = require 'tensor'

local function entry(name)
  for _, e in ipairs(zoo.list()) do
    if e.name == name then return e end
  end
  error('no zoo entry ' .. name)
end

describe('maxvit', function()
  it('maxvit_t has the reference\'s parameters and MACs', function()
    local g = zoo.trace(entry('maxvit_t'))
    local params = 0
    for _, s in ipairs(g.param_specs) do
      if not s.buffer then params = params + tensor.numel(s.shape) end
    end
    assert.are.equal(30919624, params)
    local attention = 0
    for _, n in ipairs(g.nodes) do
      if n.op == 'attention' then attention = attention + require('ops').get('attention').macs(n) end
    end
    -- stages of 56, 28, 14, 7 pixels a side, 64 .. 512 channels, 2, 2, 5, 2 layers of block + grid
    local want = 0
    for s, l in ipairs({ 2, 2, 5, 2 }) do
      local side, c = 56 / 2 ^ (s - 1), 64 * 2 ^ (s - 1)
      want = want + l * 2 * (2 * side * side * 49 * c)
    end
    assert.are.equal(want, attention)
    assert.are.equal(5381025792, g:macs() - attention)
  end)

  it('refuses an input whose maps do not split into 7x7 partitions, naming the layer', function()
    local e = entry('maxvit_t')
    e.input = { 1, 3, 192, 192 }
    local ok, err = pcall(zoo.trace, e)
    assert.is_false(ok)
    assert.matches('blocks.0.layers.0.layers.window_attention.attn_layer.1: a 48x48 map does not split into 7x7 windows',
      tostring(err), 1, true)
    assert.is_nil(tostring(err):find('\n'))
  end)
end)
