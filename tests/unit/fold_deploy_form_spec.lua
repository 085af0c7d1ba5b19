-- `foldc fold` of a description with a deploy form whose plain modules sit outside the
-- re-parameterised blocks: a conv without bias followed by a plain BatchNorm2d (which the deploy form
-- keeps, unfolded), an nn.ConvBN and a RepVGG block (which it folds). The written file holds exactly
-- the deploy form's keys, the plain modules' values unchanged, and the deploy form bound to it
-- computes what the training form computes.
local pipeline = require 'pipeline'
local interpreter = require 'interpreter'
local tensor = require 'tensor'
local zoo = require 'zoo'

local DESC = [[
local nn = require 'nn'
local function Net(cfg)
  local m = nn.Module('Net')
  m.conv = nn.Conv2d(3, 8, 3, { padding = 1, bias = false })
  m.bn = nn.BatchNorm2d(8)
  m.stem = nn.ConvBN(8, 8, 3, { padding = 1, relu = true, deploy = cfg.deploy })
  m.block = nn.RepVGGBlock(8, 16, { stride = 2, deploy = cfg.deploy })
  m.fc = nn.Linear(16, 5)
  function m:forward(x)
    x = self.block(self.stem(nn.relu(self.bn(self.conv(x)))))
    return self.fc(nn.adaptive_avg_pool2d(x, 1):flatten(1))
  end
  return m
end
return { configs = { net = { build = Net, input = { 1, 3, 12, 12 }, has_deploy_form = true } } }
]]

describe('foldc fold with plain modules beside re-parameterised blocks', function()
  local dir = os.tmpname()
  os.remove(dir)
  lfs.mkdir(dir)
  local file = dir .. '/net.lua'
  local f = assert(io.open(file, 'w'))
  f:write(DESC)
  f:close()

  it('writes the deploy form with the plain BatchNorm kept, computing the same function', function()
    local out = dir .. '/deploy.safetensors'
    require('verbs.fold').run({ model = file, weights = 'random:5', output = out })
    local training = pipeline.bound_graph(file, 'random:5')
    local written = require('weights').load(out)
    local deploy = zoo.trace(zoo.resolve(file), { deploy = true })
    local keys = {}
    for _, spec in ipairs(deploy.param_specs) do
      if spec.dtype == 'F32' then keys[#keys + 1] = spec.key end
    end
    assert.are.same(keys, written.names)
    for _, key in ipairs({ 'conv.weight', 'bn.weight', 'bn.bias', 'bn.running_mean', 'bn.running_var' }) do
      assert.are.equal(0, interpreter.rel_diff(written.tensors[key], training.params[key]), key)
    end
    require('bind').bind(deploy, written, out)
    local x = tensor.random({ 1, 3, 12, 12 }, tensor.rng(9))
    local rel = interpreter.rel_diff(interpreter.run(deploy, x)[1], interpreter.run(training, x)[1])
    assert.is_true(rel < 1e-5, 'deploy vs training ' .. rel)
  end)
end)
