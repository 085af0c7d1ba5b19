-- Re-parameterised zoo families: the deploy form of every config with has_deploy_form accepts
-- exactly the keys of ../shared/models/<name>.deploy.keys.txt (what the reference's own conversion
-- writes), build/fold pick the form from the weights' keys, and bad checkpoints are refused with
-- the block and key named.
local zoo = require 'zoo'
local bind = require 'bind'
local pipeline = require 'pipeline'
local tensor = require 'tensor'

local shared = (os.getenv('FOLDC_SHARED') or ((os.getenv('FOLDC_ROOT') or '.') .. '/../shared')) .. '/models/'

local function reference_keys(path)
  local f = io.open(path)
  if not f then return nil end
  local keys = {}
  for line in f:lines() do
    local key, shape = line:match('^([^#%s]%S*)\t(%S+)\t')
    if key then keys[key] = shape end
  end
  f:close()
  return keys
end

-- Weights of a traced graph (random), minus the keys matching `drop`, plus `extra`.
local function checkpoint(graph, drop, extra)
  local w = bind.random_weights(graph, 1)
  local out = { names = {}, tensors = {} }
  for _, key in ipairs(w.names) do
    if not (drop and key:match(drop)) then
      out.names[#out.names + 1] = key
      out.tensors[key] = w.tensors[key]
    end
  end
  for key, t in pairs(extra or {}) do
    out.names[#out.names + 1] = key
    out.tensors[key] = t
  end
  return out
end

describe('re-parameterised zoo', function()
  for _, entry in ipairs(zoo.list()) do
    local ref = entry.config.has_deploy_form and reference_keys(shared .. entry.name .. '.deploy.keys.txt')
    if ref then
      it(entry.name .. ' deploy form matches the reference conversion state_dict', function()
        local g = zoo.trace(entry, { deploy = true })
        local ours = {}
        for _, s in ipairs(g.param_specs) do ours[s.key] = tensor.shape_str(s.shape) end
        assert.are.same(ref, ours)
      end)
    end
  end

  it('picks the form from the keys, and names the block and key of a branch missing its BN', function()
    local entry = zoo.resolve('repvgg_a0')
    local training = zoo.trace(entry)
    local deploy = pipeline.form_for(entry, training, checkpoint(zoo.trace(entry, { deploy = true })))
    assert.are.equal('deploy', deploy.form)
    local w = checkpoint(training, '^stage2%.1%.rbr_1x1%.bn%.')
    local chosen = pipeline.form_for(entry, training, w)
    assert.are.equal(training, chosen)
    local ok, err = pcall(bind.bind, chosen, w, 'ckpt')
    assert.is_false(ok)
    assert.truthy(err:find('missing: stage2.1.rbr_1x1.bn.weight [96]', 1, true), err)
  end)

  it('refuses a checkpoint of another family', function()
    local entry = zoo.resolve('repvgg_a0')
    local training = zoo.trace(entry)
    local resnet = zoo.trace(zoo.resolve('resnet18'))
    local w = checkpoint(resnet)
    local ok, err = pcall(bind.bind, pipeline.form_for(entry, training, w), w, 'resnet18.safetensors')
    assert.is_false(ok)
    assert.truthy(err:find('resnet18.safetensors does not match repvgg_a0', 1, true), err)
    assert.truthy(err:find('stage0.rbr_dense.conv.weight', 1, true), err)
  end)

  it('refuses groups that do not divide the channels, naming the block', function()
    local nn = require 'nn'
    local ok, err = pcall(nn.RepVGGBlock, 6, 6, { groups = 4 })
    assert.is_false(ok)
    assert.truthy(err:find('groups=4 must divide', 1, true), err)
  end)
end)
