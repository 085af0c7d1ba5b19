-- Shapes from the checkpoint and the command line (compiler/zoo.lua settings, compiler/pipeline.lua):
-- MODEL:key=value settings are parsed (integers, numbers, booleans, names) and refused in one line
-- naming the key or value; what a description's from_weights declares is taken from the weights and
-- checked against what was given; --input replaces the input, its first dimension the graph's batch
-- (traced as one image); training_only keys are
-- accepted where declared and refused elsewhere; a size that does not fit names its layer.
local zoo = require 'zoo'
local pipeline = require 'pipeline'

local FILE = 'tests/fixtures/shapes.lua'
local DATA = 'tests/fixtures/data/'

local function refusal(fn)
  local ok, err = pcall(fn)
  assert.is_false(ok, 'accepted')
  assert.are.equal('string', type(err))
  assert.is_nil(err:find('\n'), 'more than one line: ' .. err)
  assert.is_nil(err:find('compiler/[%w_/]+%.lua:%d+'), 'an internal position: ' .. err)
  return err
end

local function weights(name) return DATA .. name .. '.safetensors' end

describe('MODEL:key=value settings', function()
  it('parses integers, numbers, booleans and names', function()
    local v = zoo.parse_settings('a=10,b=-2.5,c=true,d=false,e=max,f=1e-3', 'm')
    assert.are.same({ a = 10, b = -2.5, c = true, d = false, e = 'max', f = 1e-3 }, v)
  end)

  it('refuses anything else in one line naming the key or the item', function()
    for text, want in pairs({ ['a=1x'] = 'a="1x"', ['a=0x10'] = 'a="0x10"', ['a=nan'] = nil, ['a=inf'] = nil,
                              ['a=$(rm)'] = 'a="$(rm)"', ['a=1,a=2'] = 'a given twice', ['a'] = '"a" is not key=value',
                              ['a=1,'] = '"" is not key=value', ['=1'] = '"=1" is not key=value', ['a='] = 'a=""' }) do
      local ok, err = pcall(zoo.parse_settings, text, 'm')
      if want then
        assert.is_false(ok, text)
        assert.truthy(err:find(want, 1, true), text .. ': ' .. err)
      else
        assert.is_true(ok, text) -- nan, inf: names (refused as numbers by the config's type)
      end
    end
  end)

  it('sets a config value over the config, for zoo names and FILE.lua:CONFIG', function()
    local e = zoo.resolve('resnet18:num_classes=10')
    assert.are.equal(10, e.settings.num_classes)
    local g = zoo.trace(e)
    assert.are.equal(10, g.outputs[1].shape[2])
    e = zoo.resolve(FILE .. ':shapes_vit_grid6:img=48')
    assert.are.same({ 1, 3, 48, 48 }, zoo.trace(e).input.shape) -- size_key: the input follows img
    e = zoo.resolve('swin_t:img=64,img_w=96') -- width_key: the width follows img_w
    assert.are.same({ 1, 3, 64, 96 }, zoo.trace(e).input.shape)
    e = zoo.resolve('swin_t')
    pipeline.set_input(e, { 1, 3, 32, 48 }, '--input')
    assert.are.same({ 32, 48 }, { e.settings.img, e.settings.img_w })
  end)

  it('refuses an unknown key naming the settable ones, and a value of the wrong type', function()
    assert.are.equal('resnet18: no setting "classes" (resnet18 has depth, num_classes)',
      refusal(function() zoo.resolve('resnet18:classes=10') end))
    assert.truthy(refusal(function() zoo.resolve('resnet18:depth=deep') end)
      :find('depth=deep: expected a number', 1, true))
    assert.are.equal('resnet18: num_classes=nan: expected a number', refusal(function() zoo.resolve('resnet18:num_classes=nan') end))
    assert.truthy(refusal(function() zoo.resolve('repvgg_a0:widths=2') end):find('no setting "widths"', 1, true))
    assert.truthy(refusal(function() zoo.resolve('repvgg_a0:deploy=true') end):find('no setting "deploy"', 1, true))
  end)
end)

describe('values from the weights', function()
  it('takes num_classes from the head and img from pos_embed', function()
    local g = pipeline.bound_graph(FILE .. ':shapes_resnet_c10', weights('shapes_resnet_c10'))
    assert.are.equal(10, g.outputs[1].shape[2])
    local _, e = pipeline.bound_graph(FILE .. ':shapes_vit_grid6', weights('shapes_vit_grid6'))
    assert.are.equal(48, e.settings.img)
    assert.are.equal(5, e.settings.num_classes)
  end)

  it('checks a given value against the weights in one line', function()
    assert.are.equal(weights('shapes_repvgg_c7') .. ': the weights have num_classes = 7 (from linear.weight), '
      .. 'the command line gives 100', refusal(function()
        pipeline.bound_graph(FILE .. ':shapes_repvgg_c7:num_classes=100', weights('shapes_repvgg_c7'))
      end))
    local g = pipeline.bound_graph(FILE .. ':shapes_repvgg_c7:num_classes=7', weights('shapes_repvgg_c7'))
    assert.are.equal(7, g.outputs[1].shape[2])
  end)

  it('refuses another grid than the checkpoint\'s, from --input or a setting, unless told to resample', function()
    local err = refusal(function()
      pipeline.bound_graph(FILE .. ':shapes_vit_resample:resample_pos_embed=none', weights('shapes_vit_resample'),
        { input = { 1, 3, 48, 48 } })
    end)
    assert.truthy(err:find('the weights have img = 32 (from pos_embed), --input gives 48 '
      .. '(shapes_vit_resample:resample_pos_embed=bicubic takes it, resampling pos_embed)', 1, true), err)
    local g = pipeline.bound_graph(FILE .. ':shapes_vit_resample', weights('shapes_vit_resample'), { input = { 1, 3, 48, 48 } })
    assert.are.same({ 1, 37, 32 }, g.params['pos_embed'].shape)
    -- a config without the setting: no hint
    err = refusal(function()
      pipeline.bound_graph(FILE .. ':shapes_vit_grid6', weights('shapes_vit_grid6'), { input = { 1, 3, 32, 32 } })
    end)
    assert.truthy(err:find('the weights have img = 48 (from pos_embed), --input gives 32', 1, true), err)
    assert.falsy(err:find('resample', 1, true), err)
    assert.truthy(refusal(function()
      pipeline.bound_graph(FILE .. ':shapes_vit_grid6:img=40', weights('shapes_vit_grid6'))
    end):find('the command line gives 40', 1, true))
  end)
end)

describe('--input', function()
  it('parses NxCxHxW and refuses other ranks and bad dimensions in one line', function()
    assert.are.same({ 1, 3, 320, 320 }, pipeline.parse_shape('1x3x320x320', '--input'))
    for _, bad in ipairs({ '1x3x0x4', '1x3xx4', '1x3x4x', 'ax3', '1x3x99999999x4', '' }) do
      assert.truthy(refusal(function() pipeline.parse_shape(bad, '--input') end):find('expected NxCxHxW', 1, true))
    end
    assert.truthy(refusal(function()
      pipeline.bound_graph('resnet18', 'random', { input = { 1, 3, 64 } })
    end):find('shape 1x3x64 has 3 dimensions, resnet18 takes 4', 1, true))
  end)

  it('takes the first dimension as the batch: one image traced, every tensor N of them', function()
    local g = pipeline.bound_graph('resnet18', 'random', { input = { 4, 3, 64, 48 } })
    assert.are.same({ 1, 3, 64, 48 }, g.input.shape)
    assert.are.equal(4, g:images())
    assert.are.same({ 4, 3, 64, 48 }, g:batched_shape(g.input))
    assert.are.same({ 4, 1000 }, g:batched_shape(g.outputs[1]))
    assert.are.equal(4, g:clone():images())
  end)

  it('traces at the given size; global pooling keeps a ResNet\'s head', function()
    local g = pipeline.bound_graph('resnet18', 'random', { input = { 1, 3, 48, 64 } })
    assert.are.same({ 1, 3, 48, 64 }, g.input.shape)
    assert.are.same({ 1, 1000 }, g.outputs[1].shape)
  end)

  it('names the layer where a size does not fit', function()
    -- diracnet18's final 7x7 average pool on a 1x2 map
    assert.truthy(refusal(function() pipeline.bound_graph('diracnet18', 'random', { input = { 1, 3, 48, 64 } }) end)
      :find('features.avg_pool (pool2d): window 7x7 does not fit the 1x2 input', 1, true))
    -- a flatten into a Linear sized for the description's input; a conv larger than its input
    local base = os.tmpname()
    local path = base .. '.lua'
    local f = assert(io.open(path, 'w'))
    f:write([[local nn = require 'nn'
return { configs = { net = { input = { 1, 3, 8, 8 }, build = function()
  local m = nn.Module('Net')
  m.conv = nn.Conv2d(3, 4, 3)
  m.fc = nn.Linear(4 * 6 * 6, 10)
  function m:forward(x) return self.fc(nn.flatten(self.conv(x), 1)) end
  return m
end } } }
]])
    f:close()
    assert.truthy(refusal(function() pipeline.bound_graph(path, 'random', { input = { 1, 3, 10, 10 } }) end)
      :find('fc (linear): expects 144 input features, got 256', 1, true))
    assert.truthy(refusal(function() pipeline.bound_graph(path, 'random', { input = { 1, 3, 2, 2 } }) end)
      :find('conv (conv2d): kernel 3x3 does not fit the 2x2 input', 1, true))
    os.remove(path)
    os.remove(base)
    -- a ViT's patch grid against its position embedding
    assert.truthy(refusal(function()
      pipeline.bound_graph('vit_tiny_patch16_224', 'random', { input = { 1, 3, 320, 256 } })
    end):find('takes a square input (its img), got 320x256', 1, true))
  end)
end)

describe('training-only keys', function()
  it('are accepted where the description declares them, and refused elsewhere', function()
    local g = pipeline.bound_graph(FILE .. ':shapes_resnet_aux', weights('shapes_resnet_aux'))
    assert.is_nil(g.params['AuxLogits.0.weight'])
    assert.truthy(refusal(function()
      pipeline.bound_graph(FILE .. ':shapes_resnet_c10', weights('shapes_resnet_aux'))
    end):find('4 unexpected: AuxLogits.0.weight', 1, true))
  end)
end)
