-- foldc bench: whole-model latency (min and median over N runs after warm-up) and a per-layer
-- profile with GFLOP/s and % of the machine's FMA peak, and the GB/s of the bytes each layer must
-- move at the least (lower.step_bytes: a memory-bound layer, e.g. a depthwise conv, shows up there).
-- With --compare: the same model (PyTorch random weights) under foldc, ONNX Runtime and PyTorch,
-- interleaved, as a ratio table with peak RSS (backend.compare, compiler/compare/).
local cli = require 'cli'
local numeric_args = require 'numeric_args'

return {
  help = 'Whole-model latency and a per-layer profile.',
  define = function(c)
    cli.model_args(c)
    cli.input_shape_arg(c)
    c:option('--threads', 'Threads: 1 to 256, or 0 for one per core.', '1'):convert(numeric_args.threads('--threads'))
    c:option('--runs', 'Timed runs after warm-up, 1 to 1000000 (per round with --compare; default 20, or 5 with --compare).')
      :convert(numeric_args.integer('--runs', 1, 1000000))
    c:flag('--compare', 'Time ONNX Runtime (npm onnxruntime-node) and PyTorch side by side (weights: PyTorch random, from tests/fixtures/torch_reference.py).')
    c:option('--rounds', 'Interleaved rounds with --compare, 1 to 1000.', '8'):convert(numeric_args.integer('--rounds', 1, 1000))
    c:option('--skip', 'With --compare: runtimes to leave out, comma-separated (ort, script, eager).', '')
    c:flag('--json', 'End with one JSON line of the results.')
  end,
  run = function(a)
    local pipeline = require 'pipeline'
    local backend = require 'backend'
    if a.compare then
      -- another batch only: the PyTorch mirrors are of the zoo's input size
      local batch = a.input and a.input[1] or 1
      if a.input then
        local entry = require('zoo').resolve(a.model)
        local want = entry.config.input
        local same = type(want) == 'table' and #want == #a.input
        for i = 2, #a.input do same = same and want[i] == a.input[i] end
        if not same then
          error(string.format('--input %s with --compare: only the batch may change (the PyTorch mirror takes %s)',
            table.concat(a.input, 'x'), type(want) == 'table' and ('Nx' .. table.concat(want, 'x', 2)) or '?'), 0)
        end
      end
      return backend.compare(a.model, { target = a.target, threads = a.threads, runs = a.runs or 5,
        rounds = a.rounds, skip = a.skip, json = a.json, batch = batch })
    end
    local deploy = pipeline.deploy_graph(a.model, a.weights, { input = a.input })
    backend.bench(deploy, { target = a.target, threads = a.threads, runs = a.runs or 20, json = a.json })
  end,
}
