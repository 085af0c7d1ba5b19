-- From a model name and a weights source to the deploy graph: resolve, trace, load and bind the
-- weights, run the passes. Shared by every verb and by the tests.
local zoo = require 'zoo'
local bind = require 'bind'
local passes = require 'passes'

local pipeline = {}

-- weights_arg: a path, or "random[:SEED]" for seeded random weights with random BN statistics.
function pipeline.bound_graph(model_spec, weights_arg)
  local entry = zoo.resolve(model_spec)
  local graph = zoo.trace(entry)
  local seed = weights_arg and weights_arg:match('^random:?(%d*)$')
  if not weights_arg then
    error('no weights given (use --weights FILE, or --weights random[:SEED])', 0)
  elseif seed then
    bind.bind(graph, bind.random_weights(graph, tonumber(seed) or 1), 'random weights')
  else
    local weights = require('weights').load(weights_arg)
    if entry.config.has_deploy_form then graph = pipeline.form_for(entry, graph, weights) end
    bind.bind(graph, weights, weights_arg)
  end
  return graph, entry
end

-- A re-parameterised family's config describes two forms (training and, with deploy = true, the
-- converted one); the weights are in the form most of their keys belong to (training on a tie), so
-- a checkpoint missing a few keys is still reported against the form it was meant for.
function pipeline.form_for(entry, training, weights)
  local deploy = zoo.trace(entry, { deploy = true })
  local function matches(graph)
    local keys, n = {}, 0
    for _, spec in ipairs(graph.param_specs) do keys[spec.key] = true end
    for _, name in ipairs(weights.names) do
      if keys[name] then n = n + 1 end
    end
    return n
  end
  if matches(deploy) > matches(training) then
    deploy.form = 'deploy'
    return deploy
  end
  return training
end

function pipeline.deploy_graph(model_spec, weights_arg)
  local graph, entry = pipeline.bound_graph(model_spec, weights_arg)
  local deploy, report = passes.run(graph:clone())
  return deploy, report, graph, entry
end

return pipeline
