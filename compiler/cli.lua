-- The command line: argparse, with one file per verb under verbs/ (help, define(cmd), run(args)).
-- Errors are raised as one-line messages; main.lua prints them.
local argparse = require 'argparse'
local lfs = require 'lfs'

local cli = {}

function cli.human(n)
  if n >= 1e9 then return string.format('%.3f G', n / 1e9) end
  if n >= 1e6 then return string.format('%.2f M', n / 1e6) end
  if n >= 1e3 then return string.format('%.1f K', n / 1e3) end
  return tostring(n)
end

-- The arguments every model verb takes.
function cli.model_args(c)
  c:argument('model', 'Zoo name, or FILE.lua[:CONFIG].')
  c:option('--weights', 'Weights (.safetensors), or random[:SEED] for seeded random weights.')
  c:option('--target', 'host; x86-64 (AVX-512, AVX2+FMA and SSE4.1 tiers chosen at run time), x86-64-avx512, '
    .. 'x86-64-avx2, arm64; or a full Halide target string (spell every feature); comma lists of these. '
    .. 'GPUs: opencl, cuda (capability 70), cuda_capability_NN, after a name (arm64-opencl); beside CPU '
    .. 'targets (host,opencl, x86-64,cuda) the bundle runs on either (<model>_create_on).', 'host')
  cli.limit_arg(c)
  cli.allow_nonfinite_arg(c)
end

-- --input NxCxHxW: the input shape, replacing the description's (pipeline.parse_shape; N: the batch).
function cli.input_shape_arg(c)
  c:option('--input', 'Input shape NxCxHxW (N images a run), replacing the description\'s; e.g. 4x3x320x320.')
    :convert(function(text) return require('pipeline').parse_shape(text, '--input') end)
end

-- --allow-nonfinite: bind.lua accepts NaN/infinite weights and negative BatchNorm variances.
function cli.allow_nonfinite_arg(c)
  c:flag('--allow-nonfinite', 'Accept NaN or infinite weights and negative BatchNorm running variances '
    .. '(refused by default, by key).')
end

-- --limit NAME=VALUE (repeatable): the bounds of compiler/limits.lua, applied by cli.main.
function cli.limit_arg(c)
  c:option('--limit', 'Raise or lower a bound on what the input may need, NAME=VALUE: '
    .. require('limits').describe() .. '.'):count('*')
end

local function verb_names()
  local dir = (debug.getinfo(1, 'S').source:match('^@(.*)/[^/]*$') or '.') .. '/verbs'
  local names = {}
  for f in lfs.dir(dir) do
    if f:match('%.lua$') then names[#names + 1] = f:sub(1, -5) end
  end
  table.sort(names)
  return names
end

function cli.main(argv)
  local p = argparse('foldc', 'Compile vision models (Lua description + PyTorch weights) to standalone C.')
  p:command_target('verb')
  p:require_command(true)
  local verbs = {}
  for _, name in ipairs(verb_names()) do
    verbs[name] = require('verbs.' .. name)
    verbs[name].define(p:command(name, verbs[name].help))
  end
  local ok, args = p:pparse(argv)
  if not ok then error(args .. ' (see foldc --help)', 0) end
  if args.target then require('targets').check(args.target) end
  for _, spec in ipairs(args.limit or {}) do require('limits').set(spec) end
  if args.allow_nonfinite then require('bind').allow_nonfinite = true end
  return verbs[args.verb].run(args)
end

return cli
