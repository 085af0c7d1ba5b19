-- Binding weights to a traced graph: every parameter the description declares must be in the
-- checkpoint with its exact shape, and nothing else may be there (int64 num_batches_tracked is
-- accepted and ignored). All mismatches are reported together, by key, in one error.
local tensor = require 'tensor'

local bind = {}

local shape_str = tensor.shape_str

-- How a checkpoint differs from what a graph declares: missing specs (required ones only),
-- unexpected names (in file order), and "key: expected A, found B" lines for wrong shapes/types.
function bind.compare(graph, weights)
  local missing, unexpected, wrong, expected = {}, {}, {}, {}
  for _, spec in ipairs(graph.param_specs) do
    expected[spec.key] = spec
    local t = weights.tensors[spec.key]
    if not t then
      if not spec.optional then missing[#missing + 1] = spec end
    elseif shape_str(t.shape) ~= shape_str(spec.shape) then
      wrong[#wrong + 1] = string.format('%s: expected %s, found %s', spec.key, shape_str(spec.shape), shape_str(t.shape))
    elseif spec.dtype == 'F32' and not t.data then
      wrong[#wrong + 1] = string.format('%s: expected a float tensor, found %s', spec.key, t.dtype)
    end
  end
  for _, name in ipairs(weights.names) do
    if not expected[name] then unexpected[#unexpected + 1] = name end
  end
  return missing, unexpected, wrong
end

function bind.bind(graph, weights, source)
  local missing_specs, unexpected, wrong = bind.compare(graph, weights)
  local problems, missing = {}, {}
  for i, spec in ipairs(missing_specs) do missing[i] = spec.key .. ' [' .. shape_str(spec.shape) .. ']' end
  if #missing > 0 then problems[#problems + 1] = #missing .. ' missing: ' .. table.concat(missing, ', ') end
  if #unexpected > 0 then problems[#problems + 1] = #unexpected .. ' unexpected: ' .. table.concat(unexpected, ', ') end
  if #wrong > 0 then problems[#problems + 1] = #wrong .. ' of wrong shape: ' .. table.concat(wrong, '; ') end
  if #problems > 0 then
    error(string.format('%s does not match %s: %s', source, graph.name, table.concat(problems, '; ')), 0)
  end
  for _, spec in ipairs(graph.param_specs) do
    if spec.dtype == 'F32' then graph.params[spec.key] = weights.tensors[spec.key] end
  end
  return graph
end

-- Seeded random weights for a graph, shaped like a trained checkpoint: conv/linear weights with
-- He-normal scale, BatchNorm with random affine and random running statistics.
function bind.random_weights(graph, seed)
  local rng = tensor.rng(seed)
  local w = { names = {}, tensors = {} }
  for _, spec in ipairs(graph.param_specs) do
    if spec.dtype == 'F32' then
      local t = tensor.new(spec.shape)
      local leaf = spec.key:match('[^.]+$')
      local fan_in = 1
      for i = 2, #spec.shape do fan_in = fan_in * spec.shape[i] end
      for i = 0, t.numel - 1 do
        local v
        if leaf == 'running_var' then v = 0.5 + rng:uniform()
        elseif leaf == 'running_mean' then v = 0.1 * rng:normal()
        elseif #spec.shape == 1 and leaf == 'weight' then v = 0.5 + rng:uniform()
        elseif #spec.shape == 1 then v = 0.1 * rng:normal()
        else v = rng:normal() * math.sqrt(2 / fan_in) end
        t.data[i] = v
      end
      w.names[#w.names + 1] = spec.key
      w.tensors[spec.key] = t
    end
  end
  return w
end

return bind
