-- foldc check: the bundle and the reference interpreter (on the training-time graph) on the same
-- random input; prints the largest difference relative to the output's largest magnitude. A target
-- this machine does not run natively runs under its emulator (backend.runner), checked first.
local cli = require 'cli'
local numeric_args = require 'numeric_args'

return {
  help = 'Compare the bundle with the reference interpreter on a random input.',
  define = function(c)
    cli.model_args(c)
    cli.input_shape_arg(c)
    c:option('--seed', 'Input seed, 0 to 4294967295.', '7'):convert(numeric_args.integer('--seed', 0, 4294967295))
  end,
  run = function(a)
    local pipeline = require 'pipeline'
    local backend = require 'backend'
    local interpreter = require 'interpreter'
    local tensor = require 'tensor'
    local runner = backend.runner(a.target)
    local deploy, _, graph = pipeline.deploy_graph(a.model, a.weights, { input = a.input })
    local input = tensor.random(graph:batched_shape(graph.input), tensor.rng(a.seed), 1)
    local ref = interpreter.run(graph, input)[1]
    local out = backend.run_once(deploy, input, { target = a.target, runner = runner })
    local rel, maxdiff, maxref = interpreter.rel_diff(out, ref)
    local ok = rel <= 1e-4
    print(string.format('%s: max |bundle - reference| = %.3g, max |reference| = %.3g, relative %.3g (%s)',
      graph.name, maxdiff, maxref, rel, ok and 'ok, within 1e-4' or 'FAIL, above 1e-4'))
    return ok and 0 or 1
  end,
}
