-- The reference interpreter: runs any graph (before or after passes) node by node with each op's
-- plain-loop eval on NCHW tensors. Slow and obvious on purpose; it is what folds and generated code
-- are checked against. A batch of N images runs image by image (the ops' evals are of one image,
-- ir.lua), the outputs stacked along the first dimension.
local ffi = require 'ffi'
local ops = require 'ops'
local tensor = require 'tensor'

local interpreter = {}

local function run_one(graph, input)
  local values = { [graph.input.id] = input }
  local remaining = {}
  for _, n in ipairs(graph.nodes) do
    for _, t in ipairs(n.inputs) do remaining[t.id] = (remaining[t.id] or 0) + 1 end
  end
  local keep = {}
  for _, t in ipairs(graph.outputs) do keep[t.id] = true end
  for _, n in ipairs(graph.nodes) do
    local args = {}
    for i, t in ipairs(n.inputs) do
      args[i] = values[t.id] or error('interpreter: ' .. n.op .. ' input not computed', 0)
    end
    values[n.outputs[1].id] = ops.get(n.op).eval(n, args, graph.params)
    for _, t in ipairs(n.inputs) do
      remaining[t.id] = remaining[t.id] - 1
      if remaining[t.id] == 0 and not keep[t.id] then values[t.id] = nil end
    end
  end
  local out = {}
  for i, t in ipairs(graph.outputs) do out[i] = values[t.id] end
  return out
end

-- Run `graph` on `input` (a tensor of graph:batched_shape(graph.input): graph:images() images of
-- graph.input's shape); returns the list of output tensors (batched likewise).
function interpreter.run(graph, input)
  local n = graph:images()
  if n == 1 then return run_one(graph, input) end
  local per = tensor.numel(graph.input.shape)
  if input.numel ~= n * per then
    error(string.format('interpreter: input %s is not %d images of %s', tensor.shape_str(input.shape), n,
      tensor.shape_str(graph.input.shape)), 0)
  end
  local out = {}
  for i, t in ipairs(graph.outputs) do out[i] = tensor.new(graph:batched_shape(t)) end
  for img = 0, n - 1 do
    local one = run_one(graph, tensor.new(graph.input.shape, input.data + img * per))
    for i, t in ipairs(out) do
      local k = one[i].numel
      ffi.copy(t.data + img * k, one[i].data, 4 * k)
    end
  end
  return out
end

-- Largest |a-b| relative to the largest |b| (the project's accuracy measure). A NaN anywhere makes
-- the result NaN, never within a tolerance (math.max would drop it: LuaJIT's max ignores NaN).
function interpreter.rel_diff(a, b)
  local maxdiff, maxref = 0, 0
  for i = 0, b.numel - 1 do
    local d, r = math.abs(a.data[i] - b.data[i]), math.abs(b.data[i])
    if d ~= d or r ~= r then return 0 / 0, 0 / 0, 0 / 0 end
    if d > maxdiff then maxdiff = d end
    if r > maxref then maxref = r end
  end
  return maxref > 0 and maxdiff / maxref or maxdiff, maxdiff, maxref
end

return interpreter
