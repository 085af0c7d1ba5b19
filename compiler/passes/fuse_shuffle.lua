-- fuse_shuffle: ShuffleNetV2's join, a concatenation of two maps of K channels followed by a
-- channel shuffle in 2 groups, becomes one channel_shuffle of the two maps:
--   channel_shuffle(cat(a, b), 2) -> channel_shuffle(a, b):  y[2k] = a[k], y[2k+1] = b[k]
-- (Ma et al., ECCV 2018; ops/channel_shuffle.lua). The concatenation is then never built: one pass
-- reads both halves and writes the shuffled map. Applied when the concatenation has no other use.
local fuse_shuffle = {}

function fuse_shuffle.run(graph, report)
  local uses = graph:consumers()
  local fused = 0
  for _, node in ipairs(graph.nodes) do
    local cat = node.op == 'channel_shuffle' and #node.inputs == 1 and node.attrs.groups == 2 and node.inputs[1].producer
    local u = cat and uses[cat.outputs[1].id]
    if cat and cat.op == 'concat' and #cat.inputs == 2 and cat.inputs[1].shape[2] == cat.inputs[2].shape[2]
      and #u == 1 and u[1] == node then
      node.inputs = { cat.inputs[1], cat.inputs[2] }
      fused = fused + 1
    end
  end
  graph:prune()
  if report then report.fused_shuffle = (report.fused_shuffle or 0) + fused end
  return graph
end

return fuse_shuffle
