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
    bind.bind(graph, weights, weights_arg)
  end
  return graph, entry
end

function pipeline.deploy_graph(model_spec, weights_arg)
  local graph, entry = pipeline.bound_graph(model_spec, weights_arg)
  local deploy, report = passes.run(graph:clone())
  return deploy, report, graph, entry
end

return pipeline
