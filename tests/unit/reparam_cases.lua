-- Helpers of the fold and fusion specs (not a spec itself): trace a model, bind seeded random
-- weights (random BN affine and running statistics), run it in the reference interpreter before and
-- after the given passes on a random input.
local nn = require 'nn'
local bind = require 'bind'
local tensor = require 'tensor'
local interpreter = require 'interpreter'

local cases = {}

-- Returns the relative difference (interpreter.rel_diff) and the graph after the passes.
function cases.before_after(model, input_shape, seed, passes)
  local g = nn.trace(model, input_shape, 'case')
  bind.bind(g, bind.random_weights(g, seed), 'random')
  local x = tensor.random(input_shape, tensor.rng(seed + 100), 1)
  local want = interpreter.run(g, x)[1]
  local after = g:clone()
  for _, p in ipairs(passes) do after = p.run(after, {}) end
  local got = interpreter.run(after, x)[1]
  return interpreter.rel_diff(got, want), after
end

function cases.count(g, op)
  local n = 0
  for _, node in ipairs(g.nodes) do if node.op == op then n = n + 1 end end
  return n
end

-- A module running `child` on its input (so the child's keys get a prefix, as inside a model).
function cases.wrap(child)
  local m = nn.Module('Case')
  m.block = child
  function m:forward(x) return self.block(x) end
  return m
end

return cases
