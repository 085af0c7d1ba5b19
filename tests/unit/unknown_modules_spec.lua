-- A PyTorch name the description DSL lacks is one error line at the description's line that names it
-- and says what to use or that it is not supported yet (compiler/nn.lua's MISSING table); any other
-- name gets the generic line. The Dropouts the DSL has are the identity, as at inference.
local zoo = require 'zoo'

local dir = os.tmpname()
os.remove(dir)
assert(require('lfs').mkdir(dir))

-- A description whose build() uses `expr` on line 4 of its file.
local function description(name, expr)
  local path = dir .. '/' .. name .. '.lua'
  local f = assert(io.open(path, 'w'))
  f:write('local nn = require "nn"\nreturn { configs = { m = { input = { 1, 3, 8, 8 }, build = function()\n',
    '  local m = nn.Module("M")\n  m.x = ', expr, '\n  m.conv = nn.Conv2d(3, 4, 3)\n',
    '  function m:forward(x) return self.conv(x) end\n  return m\nend } } }\n')
  f:close()
  return path
end

local function failure(name, expr)
  local path = description(name, expr)
  local ok, err = pcall(function() return zoo.trace(zoo.resolve(path)) end)
  assert.is_false(ok, expr .. ' was accepted')
  assert.equal('string', type(err))
  assert.is_nil(err:find('\n'), 'more than one line: ' .. err)
  assert.equal(path .. ':4: ', err:sub(1, #path + 4))
  return err:sub(#path + 5)
end

describe('PyTorch names the DSL lacks', function()
  it('an unsupported activation names itself and the activations there are', function()
    -- the list comes from compiler/activations.lua, each PyTorch module once
    local names, seen = {}, {}
    for _, e in ipairs(require('activations').list) do
      if not seen[e.module] then seen[e.module] = true; names[#names + 1] = e.module end
    end
    local there = 'supported activations: ' .. table.concat(names, ', ')
    assert.truthy(there:find('ReLU, ReLU6, SiLU, Hardswish', 1, true))
    assert.equal('nn.Softplus is not supported yet (' .. there .. '; see models/README.md)',
      failure('softplus', 'nn.Softplus()'))
    assert.equal('nn.Mish is not supported yet (' .. there .. '; see models/README.md)', failure('mish', 'nn.Mish()'))
    assert.truthy(failure('leaky', 'nn.leaky_relu'):find(there, 1, true))
  end)

  it('an activation option it lacks is refused at its line, naming the values there are', function()
    assert.equal([[nn.GELU: "approximate" = "fast" is not supported ("none" or "tanh")]],
      failure('gelu_opt', 'nn.GELU({ approximate = "fast" })'))
    assert.equal([[nn.SiLU: "beta" = 2 is not supported (no such option)]], failure('silu_opt', 'nn.SiLU({ beta = 2 })'))
  end)

  it('each family of missing modules gets its own hint', function()
    local cases = {
      { 'nn.Upsample(2)', 'nn.Upsample is not supported yet (no resampling' },
      { 'nn.ConvTranspose2d(3, 3, 2)', 'nn.ConvTranspose2d is not supported yet (supported convolution: Conv2d' },
      { 'nn.LSTM(3, 3)', 'nn.LSTM is not supported yet (foldc compiles vision CNNs and transformers' },
      { 'nn.GroupNorm(1, 3)', 'nn.GroupNorm is not supported yet (supported normalisations: BatchNorm2d' },
      { 'nn.AdaptiveMaxPool2d(1)', 'nn.AdaptiveMaxPool2d is not supported yet (supported pooling: MaxPool2d' },
      { 'nn.MultiheadAttention(8, 2)', 'nn.MultiheadAttention is not supported yet (nn.Attention(dim, heads)' },
      { 'nn.TransformerEncoderLayer(8, 2)', 'nn.TransformerEncoderLayer is not supported yet (build the block' },
      { 'nn.interpolate', 'nn.interpolate is not supported yet (no resampling' },
      { 'nn.stack', 'nn.stack is not supported yet (nn.cat(list, 1) joins feature maps along channels, nn.cat_tokens token sequences' },
      { 'nn.Softmax(1)', 'nn.Softmax is not supported yet (softmax exists only inside nn.Attention' },
    }
    for _, c in ipairs(cases) do
      local err = failure('family', c[1])
      assert.equal(c[2], err:sub(1, #c[2]))
      assert.equal('; see models/README.md)', err:sub(-23))
    end
  end)

  it('a module with an equivalent says which to use', function()
    assert.equal('nn.SyncBatchNorm is not in the DSL: use nn.BatchNorm2d: at inference it is the same layer, '
      .. 'with the same keys (see models/README.md)', failure('syncbn', 'nn.SyncBatchNorm(3)'))
    assert.truthy(failure('modulelist', 'nn.ModuleList()'):find('^nn%.ModuleList is not in the DSL: use nn%.Module%(\'ModuleList\'%)'))
    assert.truthy(failure('functional', 'nn.functional.relu'):find('^nn%.functional is not in the DSL: use the functional forms on nn itself: nn%.relu'))
  end)

  it('any other name gets the generic line', function()
    assert.equal('nn.Frobnicate is not an op foldc supports (see models/README.md for those it has)',
      failure('unknown', 'nn.Frobnicate()'))
  end)

  it('the hint named for a container works: nn.Module with :add gives keys 0, 1, ...', function()
    local path = dir .. '/list.lua'
    local f = assert(io.open(path, 'w'))
    f:write([[
local nn = require "nn"
return { configs = { m = { input = { 1, 3, 8, 8 }, build = function()
  local m = nn.Module("M")
  m.layers = nn.Module("ModuleList"):add(nn.Conv2d(3, 4, 1)):add(nn.Dropout2d(0.1)):add(nn.Conv2d(4, 4, 1))
  function m:forward(x)
    x = nn.dropout(self.layers["0"](x), 0.5)
    return self.layers["2"](self.layers["1"](x))
  end
  return m
end } } }
]])
    f:close()
    local graph = zoo.trace(zoo.resolve(path))
    local keys = {}
    for _, spec in ipairs(graph.param_specs) do keys[#keys + 1] = spec.key end
    assert.same({ 'layers.0.weight', 'layers.0.bias', 'layers.2.weight', 'layers.2.bias' }, keys)
    local ops = {}
    for _, node in ipairs(graph.nodes) do ops[#ops + 1] = node.op end
    assert.same({ 'conv2d', 'conv2d' }, ops)
  end)
end)
