-- Static memory plan: every activation gets an offset in one arena, chosen greedily by size
-- (largest first, lowest offset that overlaps no tensor alive at the same time), as TFLite's
-- "greedy by size" planner does. Live range of a tensor: from the step that writes it to the last
-- step that reads it. The lower bound reported beside the arena is the largest total size of the
-- tensors alive at any one step: no plan can use less. An arena over the memory_gib bound
-- (compiler/limits.lua) is refused.
local limits = require 'limits'

local memory_plan = {}

local ALIGN = 64

local function align(n) return math.ceil(n / ALIGN) * ALIGN end
memory_plan.align = align

-- buffers: list of { bytes=, first=step, last=step }; sets .offset on each, returns arena size
-- and the lower bound.
function memory_plan.plan(buffers)
  local order = {}
  for i, b in ipairs(buffers) do order[i] = b end
  table.sort(order, function(a, b)
    if a.bytes ~= b.bytes then return a.bytes > b.bytes end
    return a.first < b.first
  end)
  local placed, arena = {}, 0
  for _, b in ipairs(order) do
    local clashes = {}
    for _, p in ipairs(placed) do
      if p.first <= b.last and b.first <= p.last then clashes[#clashes + 1] = p end
    end
    table.sort(clashes, function(x, y) return x.offset < y.offset end)
    local offset = 0
    for _, p in ipairs(clashes) do
      if offset + align(b.bytes) <= p.offset then break end
      offset = math.max(offset, p.offset + align(p.bytes))
    end
    b.offset = offset
    placed[#placed + 1] = b
    arena = math.max(arena, offset + align(b.bytes))
  end
  limits.check('memory_gib', arena / 2 ^ 30, 'the activation arena (' .. #buffers .. ' tensors)')
  local last_step = 0
  for _, b in ipairs(buffers) do last_step = math.max(last_step, b.last) end
  local bound = 0
  for s = 0, last_step do
    local live = 0
    for _, b in ipairs(buffers) do
      if b.first <= s and s <= b.last then live = live + align(b.bytes) end
    end
    bound = math.max(bound, live)
  end
  return arena, bound
end

return memory_plan
