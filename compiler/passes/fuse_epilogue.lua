-- fuse_epilogue: moves element-wise work into the kernel that produces its input, so it costs no
-- extra pass over memory:
--   add(conv(x), r)  -> conv(x) with residual r   (the conv takes the add's place in the order, so
--                                                   r is computed before it; likewise a
--                                                   squeeze-excitation gate, ops/channel_gate.lua)
--   act(conv | conv2d_proj | linear | pool | add | gate)  -> the producer with attrs.act (applied
--                                                   last, after the residual: ops/act.lua, activations.lua)
-- A producer is fused only when the tensor has no other consumer and is not a graph output, and
-- takes one activation.
local ir = require 'ir'

local fuse_epilogue = {}

local act_producers = { conv2d = true, conv2d_proj = true, linear = true, pool2d = true, add = true,
                        channel_gate = true }

-- Producers that take a residual, and the input slot it goes to.
local residual_slot = { conv2d = 2, channel_gate = 3 }

function fuse_epilogue.run(graph, report)
  local fused_add, fused_act = 0, 0
  -- residual adds into convs: prefer the operand whose conv comes later in the order
  local uses = graph:consumers()
  local position = graph:positions()
  for _, add in ipairs({ unpack(graph.nodes) }) do
    if add.op == 'add' and not add.attrs.act then
      local best, other
      for k = 1, 2 do
        local t = add.inputs[k]
        local p = t.producer
        if p and residual_slot[p.op] and not p.attrs.act and not p.inputs[residual_slot[p.op]]
          and ir.single_use(uses, t) and (not best or position[p] > position[best]) then
          best, other = p, add.inputs[3 - k]
        end
      end
      if best then
        best.inputs[residual_slot[best.op]] = other
        graph:absorb(best, add)
        fused_add = fused_add + 1
        uses = graph:consumers()
        position = graph:positions()
      end
    end
  end
  -- activations into their producer
  uses = graph:consumers()
  for _, r in ipairs({ unpack(graph.nodes) }) do
    local t = r.inputs[1]
    local p = r.op == 'act' and t.producer
    if p and act_producers[p.op] and not p.attrs.act and ir.single_use(uses, t) then
      p.attrs.act = r.attrs.act
      graph:bypass(r)
      fused_act = fused_act + 1
      uses = graph:consumers()
    end
  end
  graph:prune()
  if report then
    report.fused_add = (report.fused_add or 0) + fused_add
    report.fused_act = (report.fused_act or 0) + fused_act
  end
  return graph
end

return fuse_epilogue
