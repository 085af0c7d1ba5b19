-- Binding weights to a traced graph: every parameter the description declares must be in the
-- checkpoint with its exact shape, and nothing else may be there (int64 num_batches_tracked is
-- accepted and ignored), except keys under the description's training_only prefixes (graph.training_only,
-- e.g. an auxiliary classifier's 'AuxLogits.'), which are accepted, left unbound and reported on stderr.
-- All mismatches are reported together, by key, in one error. A parameter declared with `resample`
-- is expected at the checkpoint's grid and bound resampled to the declared one (noted on stderr).
-- Then the values: NaN or infinite values anywhere, and negative BatchNorm running variances, are
-- refused by key (one line), before any fold, unless bind.allow_nonfinite (--allow-nonfinite) is
-- set; then they are only noted on stderr.
local tensor = require 'tensor'
local printable = require('weights').printable
local resample = require 'weights.resample'

local bind = {}

bind.allow_nonfinite = false

local shape_str = tensor.shape_str
local MAX_LISTED = 4 -- keys named in one refusal

-- "key: N non-finite values (first nan at index I)" lines for the float tensors bound to graph,
-- and for its BatchNorm running variances "key: N negative values (first V at index I)".
local function value_problems(graph, weights)
  local variance = {}
  for _, node in ipairs(graph.nodes) do
    if node.params.running_var then variance[node.params.running_var] = true end
  end
  local lines = {}
  for _, spec in ipairs(graph.param_specs) do
    local t = weights.tensors[spec.key]
    if spec.dtype == 'F32' and t and t.data then
      local d, var = t.data, variance[spec.key]
      local n_bad, first_bad, n_neg, first_neg = 0, nil, 0, nil
      for i = 0, t.numel - 1 do
        local v = d[i]
        if v - v ~= 0 then -- NaN or +-inf (readers make every NaN canonical)
          n_bad = n_bad + 1
          first_bad = first_bad or i
        elseif var and v < 0 then
          n_neg = n_neg + 1
          first_neg = first_neg or i
        end
      end
      if n_bad > 0 then
        lines[#lines + 1] = string.format('%s: %d non-finite values (first %s at index %d)', spec.key, n_bad,
          tostring(d[first_bad]), first_bad)
      end
      if n_neg > 0 then
        lines[#lines + 1] = string.format('%s: %d negative values (first %.9g at index %d)', spec.key, n_neg,
          d[first_neg], first_neg)
      end
    end
  end
  return lines
end

local function training_only(graph, name)
  for _, prefix in ipairs(graph.training_only or {}) do
    if name:sub(1, #prefix) == prefix then return true end
  end
  return false
end

-- How a checkpoint differs from what a graph declares: missing specs (required ones only),
-- unexpected names (in file order), "key: expected A, found B" lines for wrong shapes/types, and the
-- names under the graph's training-only prefixes (in file order).
function bind.compare(graph, weights)
  local missing, unexpected, wrong, expected, unused = {}, {}, {}, {}, {}
  for _, spec in ipairs(graph.param_specs) do
    expected[spec.key] = spec
    local t = weights.tensors[spec.key]
    local want = spec.resample and spec.resample.stored or spec.shape
    if not t then
      if not spec.optional then missing[#missing + 1] = spec end
    elseif shape_str(t.shape) ~= shape_str(want) then
      wrong[#wrong + 1] = string.format('%s: expected %s, found %s', spec.key, shape_str(want), shape_str(t.shape))
    elseif spec.dtype == 'F32' and not t.data then
      wrong[#wrong + 1] = string.format('%s: expected a float tensor, found %s', spec.key, t.dtype)
    end
  end
  for _, name in ipairs(weights.names) do
    if not expected[name] then
      local list = training_only(graph, name) and unused or unexpected
      list[#list + 1] = name
    end
  end
  return missing, unexpected, wrong, unused
end

function bind.bind(graph, weights, source)
  local missing_specs, unexpected, wrong, unused = bind.compare(graph, weights)
  local problems, missing = {}, {}
  for i, spec in ipairs(missing_specs) do missing[i] = spec.key .. ' [' .. shape_str(spec.shape) .. ']' end
  if #missing > 0 then problems[#problems + 1] = #missing .. ' missing: ' .. table.concat(missing, ', ') end
  for i, name in ipairs(unexpected) do unexpected[i] = printable(name) end
  if #unexpected > 0 then problems[#problems + 1] = #unexpected .. ' unexpected: ' .. table.concat(unexpected, ', ') end
  if #wrong > 0 then problems[#problems + 1] = #wrong .. ' of wrong shape: ' .. table.concat(wrong, '; ') end
  if #problems > 0 then
    error(string.format('%s does not match %s: %s', source, graph.name, table.concat(problems, '; ')), 0)
  end
  local bad = value_problems(graph, weights)
  if #bad > 0 then
    local n = #bad
    if n > MAX_LISTED then
      for i = n, MAX_LISTED + 1, -1 do bad[i] = nil end
      bad[#bad + 1] = string.format('and %d more keys', n - MAX_LISTED)
    end
    local msg = source .. ': ' .. table.concat(bad, '; ')
    if not bind.allow_nonfinite then
      error(msg .. ' (NaN, infinite or negative-variance weights; --allow-nonfinite accepts them)', 0)
    end
    io.stderr:write('foldc: note: ', msg, ' (accepted: --allow-nonfinite)\n')
  end
  if #unused > 0 then
    local shown = {}
    for i = 1, math.min(#unused, MAX_LISTED) do shown[i] = printable(unused[i]) end
    if #unused > MAX_LISTED then shown[#shown + 1] = 'and ' .. (#unused - MAX_LISTED) .. ' more' end
    io.stderr:write(string.format('foldc: note: %s: %d training-only keys not used (%s): %s\n', source, #unused,
      table.concat(graph.training_only, ', '), table.concat(shown, ', ')))
  end
  for _, spec in ipairs(graph.param_specs) do
    if spec.dtype == 'F32' then
      local t, r = weights.tensors[spec.key], spec.resample
      if r and t then
        t = resample.grid(t, r.grid, r.to, r.prefix, r.mode)
        io.stderr:write(string.format('foldc: note: %s: %dx%d grid resampled to %dx%d (%s)\n', spec.key, r.grid[1],
          r.grid[2], r.to[1], r.to[2], r.mode:gsub('_', ', ')))
      end
      graph.params[spec.key] = t
    end
  end
  return graph
end

-- Seeded random weights for a graph, shaped like a trained checkpoint: conv/linear weights with
-- He-normal scale, BatchNorm with random affine and random running statistics; optional tensors
-- (buffers the description recomputes, such as Swin's attention masks) are left out.
function bind.random_weights(graph, seed)
  local rng = tensor.rng(seed)
  local w = { names = {}, tensors = {} }
  for _, spec in ipairs(graph.param_specs) do
    if spec.dtype == 'F32' and not spec.optional then
      local t = tensor.new(spec.resample and spec.resample.stored or spec.shape)
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
