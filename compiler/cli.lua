-- The command line: one function per verb; argparse parses, errors are raised as one-line messages.
local argparse = require 'argparse'

local cli = {}

local function human(n)
  if n >= 1e9 then return string.format('%.3f G', n / 1e9) end
  if n >= 1e6 then return string.format('%.2f M', n / 1e6) end
  if n >= 1e3 then return string.format('%.1f K', n / 1e3) end
  return tostring(n)
end
cli.human = human

local verbs = {}

function verbs.list()
  local zoo = require 'zoo'
  print(string.format('%-24s %-10s %12s %12s', 'name', 'family', 'params', 'MACs'))
  for _, e in ipairs(zoo.list()) do
    local g = zoo.trace(e)
    local params = 0
    for _, s in ipairs(g.param_specs) do
      if not s.buffer then params = params + require('tensor').numel(s.shape) end
    end
    print(string.format('%-24s %-10s %12s %12s', e.name, e.family, human(params), human(g:macs())))
  end
end

function verbs.check(a)
  local pipeline = require 'pipeline'
  local backend = require 'backend'
  local interpreter = require 'interpreter'
  local tensor = require 'tensor'
  local deploy, _, graph = pipeline.deploy_graph(a.model, a.weights)
  local input = tensor.random(graph.input.shape, tensor.rng(a.seed), 1)
  local ref = interpreter.run(graph, input)[1]
  local out = backend.run_once(deploy, input, { target = a.target })
  local rel, maxdiff, maxref = interpreter.rel_diff(out, ref)
  print(string.format('%s: max |bundle - reference| = %.3g, max |reference| = %.3g, relative %.3g (%s)',
    graph.name, maxdiff, maxref, rel, rel <= 1e-4 and 'ok, within 1e-4' or 'FAIL, above 1e-4'))
  return rel <= 1e-4 and 0 or 1
end

function verbs.build(a)
  local pipeline = require 'pipeline'
  local backend = require 'backend'
  local deploy, report = pipeline.deploy_graph(a.model, a.weights)
  local info = backend.build(deploy, a.output, { target = a.target, weights = a.weights ~= nil and not a.no_weights })
  io.stderr:write(backend.summary(deploy, report, info), '\n')
end

function verbs.run(a)
  local pipeline = require 'pipeline'
  local backend = require 'backend'
  local npy = require 'weights.npy'
  local deploy = pipeline.deploy_graph(a.model, a.weights)
  local input = npy.read(a.input)
  local want = table.concat(deploy.input.shape, 'x')
  if table.concat(input.shape, 'x') ~= want then
    error(string.format('%s: input shape %s, the model expects %s', a.input, table.concat(input.shape, 'x'), want), 0)
  end
  local out = backend.run_once(deploy, input, { target = a.target })
  npy.write(a.output, out)
end

function verbs.bench(a)
  local pipeline = require 'pipeline'
  local backend = require 'backend'
  local deploy = pipeline.deploy_graph(a.model, a.weights)
  backend.bench(deploy, { target = a.target, threads = a.threads, runs = a.runs, json = a.json })
end

function cli.parser()
  local p = argparse('foldc', 'Compile vision models (Lua description + PyTorch weights) to standalone C.')
  p:command_target('verb')
  p:require_command(true)
  p:command('list', 'List the zoo: name, family, parameters, MACs.')
  local function model_args(c)
    c:argument('model', 'Zoo name, or FILE.lua[:CONFIG].')
    c:option('--weights', 'Weights (.safetensors), or random[:SEED] for seeded random weights.')
    c:option('--target', 'host, or a full Halide target string (spell every feature).', 'host')
  end
  local b = p:command('build', 'Write a bundle: C glue, kernels, runtime, Makefile, CMakeLists.txt.')
  model_args(b)
  b:option('-o --output', 'Bundle directory to create.'):args(1):count(1)
  b:flag('--no-weights', 'Write the code only, not the weights file.')
  local r = p:command('run', 'Build (kernels cached), compile the bundle and run one input.')
  model_args(r)
  r:option('--input', 'Input tensor (.npy, float32, NCHW).'):count(1)
  r:option('--output', 'Output tensor to write (.npy).'):count(1)
  local be = p:command('bench', 'Whole-model latency and a per-layer profile.')
  model_args(be)
  be:option('--threads', 'Threads.', '1'):convert(tonumber)
  be:option('--runs', 'Timed runs after warm-up.', '20'):convert(tonumber)
  be:flag('--json', 'End with one JSON line of the results.')
  local c = p:command('check', 'Compare the bundle with the reference interpreter on a random input.')
  model_args(c)
  c:option('--seed', 'Input seed.', '7'):convert(tonumber)
  return p
end

function cli.main(argv)
  local p = cli.parser()
  local ok, args = p:pparse(argv)
  if not ok then error(args .. ' (see foldc --help)', 0) end
  return verbs[args.verb](args)
end

return cli
