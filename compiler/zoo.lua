-- The model zoo and description loading: a model is named either by a zoo name ("resnet50") or by
-- a description file with an optional config ("my_net.lua:small"). A description file returns a
-- table { family = ..., configs = { name = { build = fn, input = {1,C,H,W}, ...args } } }.
local lfs = require 'lfs'
local nn = require 'nn'

local zoo = {}

local root = os.getenv('FOLDC_ROOT') or '.'
zoo.models_dir = root .. '/models'

-- Load a description file; errors name the file and line.
function zoo.load_file(path)
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  local ok, desc = pcall(chunk)
  if not ok then error(tostring(desc), 0) end
  if type(desc) ~= 'table' or type(desc.configs) ~= 'table' then
    error(path .. ': a description must return a table with a "configs" field', 0)
  end
  return desc
end

-- All zoo configs: list of { name, family, file, config }, sorted by file then name.
function zoo.list()
  local files = {}
  for f in lfs.dir(zoo.models_dir) do
    if f:match('%.lua$') then files[#files + 1] = f end
  end
  table.sort(files)
  local out = {}
  for _, f in ipairs(files) do
    local path = zoo.models_dir .. '/' .. f
    local desc = zoo.load_file(path)
    local names = {}
    for name in pairs(desc.configs) do names[#names + 1] = name end
    table.sort(names)
    for _, name in ipairs(names) do
      out[#out + 1] = { name = name, family = desc.family or f:gsub('%.lua$', ''), file = path,
                        config = desc.configs[name] }
    end
  end
  return out
end

-- Resolve "NAME" or "FILE.lua[:CONFIG]" to { name, family, file, config }.
function zoo.resolve(spec)
  local file, config = spec:match('^(.-%.lua):([%w_%-%.]+)$')
  if not file and spec:match('%.lua$') then file = spec end
  if file then
    if not lfs.attributes(file) then error(file .. ': no such description file', 0) end
    local desc = zoo.load_file(file)
    local names = {}
    for name in pairs(desc.configs) do names[#names + 1] = name end
    table.sort(names)
    if not config then
      if #names ~= 1 then
        error(file .. ': has configs ' .. table.concat(names, ', ') .. '; name one as ' .. file .. ':CONFIG', 0)
      end
      config = names[1]
    end
    if not desc.configs[config] then
      error(file .. ': no config "' .. config .. '" (has ' .. table.concat(names, ', ') .. ')', 0)
    end
    return { name = config, family = desc.family or '?', file = file, config = desc.configs[config] }
  end
  for _, entry in ipairs(zoo.list()) do
    if entry.name == spec then return entry end
  end
  error('unknown model "' .. spec .. '" (see foldc list, or give FILE.lua[:CONFIG])', 0)
end

-- Build and trace the model: returns the graph (training-time form, parameters unbound).
-- overrides: fields that replace the config's, e.g. { deploy = true } for the deploy form of a
-- config with has_deploy_form (re-parameterised families; see pipeline.bound_graph).
function zoo.trace(entry, overrides)
  local cfg = entry.config
  if type(cfg.build) ~= 'function' or type(cfg.input) ~= 'table' then
    error(entry.file .. ': config "' .. entry.name .. '" needs build = function and input = {1,C,H,W}', 0)
  end
  if overrides then cfg = setmetatable(overrides, { __index = cfg }) end
  local ok, root_or_err = pcall(cfg.build, cfg)
  if not ok then error(tostring(root_or_err), 0) end
  local graph = nn.trace(root_or_err, cfg.input, entry.name)
  graph.family = entry.family
  return graph
end

return zoo
