-- foldc run: build (kernels cached), compile the bundle with the system C compiler, run one input.
local cli = require 'cli'

return {
  help = 'Build (kernels cached), compile the bundle and run one input.',
  define = function(c)
    cli.model_args(c)
    c:option('--input', 'Input tensor (.npy, float32, NCHW).'):count(1)
    c:option('--output', 'Output tensor to write (.npy).'):count(1)
  end,
  run = function(a)
    local pipeline = require 'pipeline'
    local backend = require 'backend'
    local npy = require 'weights.npy'
    local deploy = pipeline.deploy_graph(a.model, a.weights)
    local input = npy.read(a.input)
    local want = table.concat(deploy.input.shape, 'x')
    if table.concat(input.shape, 'x') ~= want then
      error(string.format('%s: input shape %s, the model expects %s', a.input, table.concat(input.shape, 'x'), want), 0)
    end
    npy.write(a.output, backend.run_once(deploy, input, { target = a.target }))
  end,
}
