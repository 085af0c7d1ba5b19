-- From a model name and a weights source to the deploy graph: resolve, load the weights, take the
-- config values the weights determine (the description's from_weights) and the input shape, trace,
-- bind the weights, run the passes. Shared by every verb and by the tests.
-- A value the weights determine is checked against one given on the command line or by --input
-- (one line naming the key, the weights' value and the given one); the values taken are reported on
-- stderr ("num_classes = 10, from fc.weight"). A batch of N images (the input's first dimension)
-- is traced as one image and becomes the graph's `batch` (ir.lua).
local zoo = require 'zoo'
local bind = require 'bind'
local passes = require 'passes'

local pipeline = {}

local MAX_DIM = 1e6 -- any one input dimension (memory is bounded by nn.trace's memory_gib check)

-- "NxCxHxW" (or "NxTxD" for a token model): a list of positive integers.
function pipeline.parse_shape(text, what)
  local dims = {}
  for d in (text .. 'x'):gmatch('([^x]*)x') do
    local n = d:match('^%d+$') and #d <= 7 and tonumber(d)
    if not n or n < 1 or n > MAX_DIM then
      error(string.format('%s %s: expected NxCxHxW, positive integers up to %d', what,
        (text:sub(1, 60):gsub('[^\32-\126]', '?')), MAX_DIM), 0)
    end
    dims[#dims + 1] = n
  end
  return dims
end

-- Replace the entry's input by `shape` (from --input or an input file, named by `what`).
function pipeline.set_input(entry, shape, what)
  what = what:gsub('[^\32-\126]', '?')
  local want = entry.config.input
  local text = #shape > 0 and table.concat(shape, 'x') or '()'
  if type(want) == 'table' and #shape ~= #want then
    error(string.format('%s: shape %s has %d dimensions, %s takes %d (%s)', what, text, #shape, entry.name, #want,
      table.concat(want, 'x')), 0)
  end
  local key, wkey = entry.size_key, entry.width_key
  if key and #shape == 4 then
    if shape[3] ~= shape[4] and not wkey then
      error(string.format('%s: %s takes a square input (its %s), got %dx%d', what, entry.name, key, shape[3], shape[4]), 0)
    end
    local function set(k, v)
      local given = entry.settings[k]
      if given ~= nil and given ~= v then
        error(string.format('%s: %s is %s, given %s by %s', what, k, v, tostring(given), entry.given[k]), 0)
      end
      entry.settings[k], entry.given[k] = v, what
    end
    set(key, shape[3])
    if wkey then set(wkey, shape[4]) end
  end
  entry.input = { 1, unpack(shape, 2) }
  entry.batch = shape[1]
end

-- The value of one from_weights declaration `d` (for config value `name`) on a checkpoint, or nil
-- when the tensor is absent or of too low a rank (the key check reports it).
local function derive(entry, name, d, weights, source)
  local t = weights.tensors[d.key]
  if d.present then return t and d.present or d.absent end
  if not t or not t.shape or #t.shape < d.dim then return nil end
  local function operand(v, default)
    if type(v) == 'string' then
      local x = entry.settings[v]
      if x == nil then x = entry.config[v] end
      if x ~= nil and type(x) ~= 'number' then
        error(string.format('%s: config "%s": from_weights.%s uses %s, which is not a number', entry.file, entry.name,
          name, v), 0)
      end
      v = x
    end
    if v == nil then return default end
    return v
  end
  local size = t.shape[d.dim]
  local base = size - operand(d.minus, 0)
  local v = base
  if d.root == 2 then
    v = math.floor(math.sqrt(math.max(base, 0)) + 0.5)
    if v * v ~= base then v = nil end
  end
  if v then v = v * operand(d.times, 1) + operand(d.plus, 0) end
  if not v or v < 1 or v % 1 ~= 0 then
    error(string.format('%s: %s dimension %d is %d, which gives no whole %s for %s', source, d.key, d.dim, size,
      name, entry.name), 0)
  end
  return v
end

-- Take the from_weights values from the checkpoint, in name order; returns report lines.
function pipeline.from_weights(entry, weights, source)
  local names, notes = {}, {}
  for k in pairs(entry.from_weights) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do
    local d = entry.from_weights[k]
    local v = derive(entry, k, d, weights, source)
    if v ~= nil then
      local given = entry.settings[k]
      if d.checkpoint_as then entry.settings[d.checkpoint_as] = v end
      if given ~= nil and given ~= v then
        local other = d.other_with and (entry.settings[d.other_with] or entry.config[d.other_with])
        if not other or other == 'none' then
          error(string.format('%s: the weights have %s = %s (from %s), %s gives %s%s', source, k, v, d.key,
            entry.given[k], tostring(given), d.other_with and entry.config[d.other_with] ~= nil and string.format(' (%s:%s=bicubic takes it, resampling %s)',
              entry.name, d.other_with, d.key) or ''), 0)
        end
        notes[#notes + 1] = string.format('%s = %s, from %s; the weights have %s = %s (from %s)', k, given,
          entry.given[k], k, v, d.key)
      else
        if given == nil then
        notes[#notes + 1] = string.format('%s = %s, from %s%s', k, v, d.present and (weights.tensors[d.key] and '' or 'no ')
          or '', d.key)
      end
        entry.settings[k] = v
      end
    end
  end
  return notes
end

-- weights_arg: a path, or "random[:SEED]" for seeded random weights with random BN statistics.
-- opts.input: an input shape replacing the description's ({1, C, H, W}; what names its source).
function pipeline.bound_graph(model_spec, weights_arg, opts)
  opts = opts or {}
  local entry = zoo.resolve(model_spec)
  if opts.input then pipeline.set_input(entry, opts.input, opts.input_what or '--input') end
  local seed = weights_arg and weights_arg:match('^random:?(%d*)$')
  if not weights_arg then
    error('no weights given (use --weights FILE, or --weights random[:SEED])', 0)
  end
  local graph
  if seed then
    graph = zoo.trace(entry)
    bind.bind(graph, bind.random_weights(graph, tonumber(seed) or 1), 'random weights')
  else
    local weights = require('weights').load(weights_arg)
    local notes = pipeline.from_weights(entry, weights, weights_arg)
    graph = zoo.trace(entry)
    if entry.config.has_deploy_form then graph = pipeline.form_for(entry, graph, weights) end
    bind.bind(graph, weights, weights_arg)
    for _, line in ipairs(notes) do io.stderr:write('foldc: ', line, '\n') end -- once the weights are bound
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

function pipeline.deploy_graph(model_spec, weights_arg, opts)
  local graph, entry = pipeline.bound_graph(model_spec, weights_arg, opts)
  local deploy, report = passes.run(graph:clone())
  return deploy, report, graph, entry
end

return pipeline
