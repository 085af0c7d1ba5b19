-- The pass pipeline that turns a bound training-time graph into the deploy graph the backend
-- compiles: folds first (exact algebra), then epilogue fusion. Returns the graph and a report.
local passes = {}

passes.pipeline = {
  require 'passes.fold_repvgg',
  require 'passes.fold_acb',
  require 'passes.fold_dbb',
  require 'passes.fold_dirac',
  require 'passes.fold_repmlp',
  require 'passes.fold_bn',
  require 'passes.fold_adaptive_pool',
  require 'passes.pool_before_conv',
  require 'passes.fuse_projection',
  require 'passes.fuse_shuffle',
  require 'passes.fuse_epilogue',
  require 'passes.fuse_linear_tokens',
}

-- Trainable parameters of a bound graph (BN running statistics are buffers, not counted).
local function trainable_params(graph)
  local n = 0
  for _, spec in ipairs(graph.param_specs) do
    local p = graph.params[spec.key]
    if p and not spec.buffer then n = n + p.numel end
  end
  return n
end

function passes.run(graph)
  local report = { params_before = trainable_params(graph), macs_before = graph:macs() }
  for _, pass in ipairs(passes.pipeline) do graph = pass.run(graph, report) end
  report.params_after, report.macs_after = graph:param_count(), graph:macs()
  return graph, report
end

return passes
