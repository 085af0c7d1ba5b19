-- The pass pipeline that turns a bound training-time graph into the deploy graph the backend
-- compiles: folds first (exact algebra), then epilogue fusion. Returns the graph and a report.
local passes = {}

passes.pipeline = {
  require 'passes.fold_bn',
  require 'passes.fuse_epilogue',
}

function passes.run(graph)
  local report = { params_before = graph:param_count(), macs_before = graph:macs() }
  for _, pass in ipairs(passes.pipeline) do graph = pass.run(graph, report) end
  report.params_after, report.macs_after = graph:param_count(), graph:macs()
  return graph, report
end

return passes
