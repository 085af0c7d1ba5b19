-- foldc fold: the deploy-form weights of a checkpoint, as safetensors: every structural
-- re-parameterisation (RepVGG, ACB, DBB, Dirac, RepMLP) and BatchNorm folded. For a family whose
-- description has a deploy form (has_deploy_form) the file holds exactly that form's keys and shapes,
-- which are the keys the reference implementation's own conversion writes, so it loads into the
-- original deploy model; for other models, the folded graph's parameters. Nothing is written unless
-- every key is there.

local function weight_list(deploy, entry)
  local list = {}
  if entry.config.has_deploy_form then
    local zoo = require 'zoo'
    local tensor = require 'tensor'
    local form = zoo.trace(entry, { deploy = true })
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
    local pipeline = require 'pipeline'
    local backend = require 'backend'
    local deploy, report, _, entry = pipeline.deploy_graph(a.model, a.weights)
    local list = weight_list(deploy, entry)
    require('weights.safetensors').write(a.output, list)
    local lines = backend.fold_report(deploy, report)
    lines[#lines + 1] = string.format('  wrote %s (%d tensors)', a.output, #list)
    io.stderr:write(table.concat(lines, '\n'), '\n')
  end,
}
