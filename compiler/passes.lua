-- The pass pipeline that turns a bound training-time graph into the deploy graph the backend
-- compiles: folds first (exact algebra), then epilogue fusion. Returns the graph and a report.
local passes = {}

-- The folds: exact algebra on the weights, ending in the deploy form's parameters.
passes.folds = {
  require 'passes.fold_repvgg',
  require 'passes.fold_acb',
  require 'passes.fold_dbb',
  require 'passes.fold_dirac',
  require 'passes.fold_repmlp',
  require 'passes.fold_mobileone',
  require 'passes.fold_bn',
}

passes.pipeline = {}
for i, pass in ipairs(passes.folds) do passes.pipeline[i] = pass end
-- Then rewrites for the kernels: exact too, but not the deploy form's parameters.
for _, pass in ipairs({ require 'passes.levit_attention_layout', require 'passes.affine_into_conv',
                        require 'passes.fold_adaptive_pool', require 'passes.pool_before_conv',
                        require 'passes.pad_after_linear',
                        require 'passes.fuse_projection', require 'passes.fuse_shuffle',
                        require 'passes.fuse_epilogue', require 'passes.fold_token_transpose',
                        require 'passes.fuse_linear_tokens' }) do
  passes.pipeline[#passes.pipeline + 1] = pass
end

-- Trainable parameters of a bound graph (BN running statistics are buffers, not counted).
local function trainable_params(graph)
  local n = 0
  for _, spec in ipairs(graph.param_specs) do
    local p = graph.params[spec.key]
    if p and not spec.buffer then n = n + p.numel end
  end
  return n
end

local function run(graph, list)
  local report = { params_before = trainable_params(graph), macs_before = graph:macs() }
  for _, pass in ipairs(list) do graph = pass.run(graph, report) end
  report.params_after, report.macs_after = graph:param_count(), graph:macs()
  return graph, report
end

-- The whole pipeline (graph, report).
function passes.run(graph) return run(graph, passes.pipeline) end

-- The folds alone: the deploy form's parameters, nothing fused (graph, report).
function passes.fold(graph) return run(graph, passes.folds) end

return passes
