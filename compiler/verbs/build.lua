-- foldc build: write a bundle for a model and its weights.
local cli = require 'cli'

return {
  help = 'Write a bundle: C glue, kernels, runtime, Makefile, CMakeLists.txt.',
  define = function(c)
    cli.model_args(c)
    cli.input_shape_arg(c)
    c:option('-o --output', 'Bundle directory to create.'):count(1)
    c:flag('--no-weights', 'Write the code only, not the weights file.')
  end,
  run = function(a)
    local pipeline = require 'pipeline'
    local backend = require 'backend'
    backend.output_dir(a.output)
    local deploy, report = pipeline.deploy_graph(a.model, a.weights, { input = a.input })
    local info = backend.build(deploy, a.output, { target = a.target, weights = not a.no_weights })
    io.stderr:write(backend.summary(deploy, report, info), '\n')
  end,
}
