-- Every zoo model accepts exactly the state_dict keys and shapes of its reference implementation,
-- as listed in ../shared/models/<name>.keys.txt (but the keys under the description's training_only
-- prefixes, which it accepts unbound).
local zoo = require 'zoo'
local tensor = require 'tensor'

local shared = (os.getenv('FOLDC_SHARED') or ((os.getenv('FOLDC_ROOT') or '.') .. '/../shared')) .. '/models/'

local function reference_keys(name)
  local f = io.open(shared .. name .. '.keys.txt')
  if not f then return nil end
  local keys = {}
  for line in f:lines() do
    local key, shape = line:match('^([^#%s]%S*)\t(%S+)\t')
    if key then keys[key] = shape end
  end
  f:close()
  return keys
end

describe('zoo keys', function()
  for _, entry in ipairs(zoo.list()) do
    local ref = reference_keys(entry.name)
    if ref then
      it(entry.name .. ' matches its reference state_dict', function()
        local g = zoo.trace(entry)
        local ours = {}
        for _, s in ipairs(g.param_specs) do ours[s.key] = tensor.shape_str(s.shape) end
        for key, shape in pairs(ref) do
          local training_only = false
          for _, prefix in ipairs(entry.training_only) do training_only = training_only or key:sub(1, #prefix) == prefix end
          if not training_only then assert.are.equal(shape, ours[key], 'key ' .. key) end
        end
        for key in pairs(ours) do
          assert.is_not_nil(ref[key], 'unexpected key ' .. key)
        end
      end)
    end
  end
  it('finds the reference key lists', function()
    assert.is_not_nil(reference_keys('resnet18'), 'missing ' .. shared .. 'resnet18.keys.txt')
  end)
end)
