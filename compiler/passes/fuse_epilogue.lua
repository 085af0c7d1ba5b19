-- fuse_epilogue: moves element-wise work into the kernel that produces its input, so it costs no
-- extra pass over memory:
--   add(conv(x), r)  -> conv(x) with residual r   (the conv takes the add's place in the order, so
--                                                   r is computed before it)
--   relu(conv | conv2d_proj | linear | pool | add)  -> the producer with relu = true (applied last)
-- A producer is fused only when the tensor has no other consumer and is not a graph output.
local fuse_epilogue = {}

local relu_producers = { conv2d = true, conv2d_proj = true, linear = true, pool2d = true, add = true }

local function single_use(uses, t)
  local u = uses[t.id]
  return u and #u == 1 and u[1] ~= false
end

local function replace_node(graph, old, new)
  for i, n in ipairs(graph.nodes) do
    if n == old then graph.nodes[i] = new; return end
  end
end

local function remove_node(graph, node)
  for i, n in ipairs(graph.nodes) do
    if n == node then table.remove(graph.nodes, i); return end
  end
end

function fuse_epilogue.run(graph, report)
  local fused_add, fused_relu = 0, 0
  -- residual adds into convs: prefer the operand whose conv comes later in the order
  local uses = graph:consumers()
  local position = {}
  for i, n in ipairs(graph.nodes) do position[n] = i end
  for _, add in ipairs({ unpack(graph.nodes) }) do
    if add.op == 'add' and not add.attrs.relu then
      local best, other
      for k = 1, 2 do
        local t = add.inputs[k]
        local p = t.producer
        if p and p.op == 'conv2d' and not p.attrs.relu and not p.inputs[2] and single_use(uses, t)
          and (not best or position[p] > position[best]) then
          best, other = p, add.inputs[3 - k]
        end
      end
      if best then
        best.inputs[2] = other
        remove_node(graph, best)
        replace_node(graph, add, best)
        graph:replace_uses(add.outputs[1], best.outputs[1])
        fused_add = fused_add + 1
        uses = graph:consumers()
        position = {}
        for i, n in ipairs(graph.nodes) do position[n] = i end
      end
    end
  end
  -- relu into its producer
  uses = graph:consumers()
  for _, r in ipairs({ unpack(graph.nodes) }) do
    local t = r.inputs[1]
    local p = r.op == 'relu' and t.producer
    if p and relu_producers[p.op] and not p.attrs.relu and single_use(uses, t) then
      p.attrs.relu = true
      graph:replace_uses(r.outputs[1], t)
      remove_node(graph, r)
      fused_relu = fused_relu + 1
      uses = graph:consumers()
    end
  end
  graph:prune()
  if report then
    report.fused_add = (report.fused_add or 0) + fused_add
    report.fused_relu = (report.fused_relu or 0) + fused_relu
  end
  return graph
end

return fuse_epilogue
