-- foldc bench: whole-model latency (min and median over N runs after warm-up) and a per-layer
-- profile with GFLOP/s and % of the machine's FMA peak.
local cli = require 'cli'

return {
  help = 'Whole-model latency and a per-layer profile.',
  define = function(c)
    cli.model_args(c)
    c:option('--threads', 'Threads.', '1'):convert(tonumber)
    c:option('--runs', 'Timed runs after warm-up.', '20'):convert(tonumber)
    c:flag('--json', 'End with one JSON line of the results.')
  end,
  run = function(a)
    local pipeline = require 'pipeline'
    local backend = require 'backend'
    local deploy = pipeline.deploy_graph(a.model, a.weights)
    backend.bench(deploy, { target = a.target, threads = a.threads, runs = a.runs, json = a.json })
  end,
}
