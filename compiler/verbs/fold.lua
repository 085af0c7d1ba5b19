-- foldc fold: the deploy-form weights of a checkpoint, as safetensors: every structural
-- re-parameterisation (RepVGG, ACB, DBB, Dirac, RepMLP) and BatchNorm folded. For a family whose
-- description has a deploy form (has_deploy_form) the file holds exactly that form's keys and shapes,
-- which are the keys the reference implementation's own conversion writes, so it loads into the
-- original deploy model: only the folds run (no fusion), and a BatchNorm the deploy form itself has
-- (a plain one outside any re-parameterised block) stays as it is. For other models, the folded
-- graph's parameters. Nothing is written unless every key is there.
local pipeline = require 'pipeline'
local passes = require 'passes'
local zoo = require 'zoo'
local tensor = require 'tensor'

-- The training graph folded into `form` (the deploy form's trace).
local function fold_to_form(graph, form)
  local keys = {}
  for _, spec in ipairs(form.param_specs) do keys[spec.key] = true end
  graph = graph:clone()
  for _, node in ipairs(graph.nodes) do
    if node.op == 'batchnorm' and keys[node.params.running_mean] then node.keep = true end
  end
  return passes.fold(graph)
end

local function weight_list(deploy, entry, form)
  local list = {}
  if form then
    local expected = {}
    for _, spec in ipairs(form.param_specs) do
      if spec.dtype == 'F32' then
        local t = deploy.params[spec.key]
        if not t or tensor.shape_str(t.shape) ~= tensor.shape_str(spec.shape) then
          error(string.format('%s: folding gave %s for deploy key %s (expected %s)', entry.name,
            t and tensor.shape_str(t.shape) or 'nothing', spec.key, tensor.shape_str(spec.shape)), 0)
        end
        expected[spec.key] = true
        list[#list + 1] = { name = spec.key, tensor = t }
      end
    end
    for key in pairs(deploy.params) do
      if not expected[key] then
        error(entry.name .. ': folding left ' .. key .. ', which the deploy form does not have', 0)
      end
    end
  else
    local seen = {}
    for _, node in ipairs(deploy.nodes) do
      for _, role in ipairs({ 'weight', 'bias', 'proj_weight', 'proj_bias' }) do
        local key = node.params[role]
        if key and not seen[key] then
          seen[key] = true
          list[#list + 1] = { name = key, tensor = deploy.params[key] }
        end
      end
    end
  end
  return list
end

return {
  help = 'Write the deploy-form weights (re-parameterised blocks and BatchNorms folded).',
  define = function(c)
    c:argument('model', 'Zoo name, or FILE.lua[:CONFIG].')
    c:option('--weights', 'Training-time weights (.safetensors), or random[:SEED].'):count(1)
    c:option('-o --output', 'Deploy weights to write (.safetensors).'):count(1)
    require('cli').limit_arg(c)
    require('cli').allow_nonfinite_arg(c)
  end,
  run = function(a)
    local backend = require 'backend'
    local deploy, report, form
    local graph, entry = pipeline.bound_graph(a.model, a.weights)
    if entry.config.has_deploy_form then
      form = zoo.trace(entry, { deploy = true })
      deploy, report = fold_to_form(graph, form)
    else
      deploy, report = passes.run(graph:clone())
    end
    local list = weight_list(deploy, entry, form)
    require('weights.safetensors').write(a.output, list)
    local lines = backend.fold_report(deploy, report)
    lines[#lines + 1] = string.format('  wrote %s (%d tensors)', a.output, #list)
    io.stderr:write(table.concat(lines, '\n'), '\n')
  end,
}
