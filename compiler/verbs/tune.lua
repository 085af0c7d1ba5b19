-- foldc tune: search schedules for every distinct kernel of a model by compiling and timing
-- candidates on this machine (compiler/tune.lua); results go to schedules/<target>/ and are used
-- by every later build for that target.
local cli = require 'cli'

return {
  help = 'Search kernel schedules on this machine; record the best in schedules/<target>/.',
  define = function(c)
    cli.model_args(c)
    c:option('--minutes', 'Time budget for the whole model.', '15'):convert(tonumber)
    c:option('--threads', 'Threads the kernels are timed with.', '1'):convert(tonumber)
    c:flag('--force', 'Re-tune kernels that already have a record (and forget logged measurements).')
    c:flag('--no-runoff', 'Skip the run-off in the model (records must also beat the defaults inside the whole model).')
  end,
  run = function(a)
    local pipeline = require 'pipeline'
    local lower = require 'lower'
    local kernels = require 'kernels'
    local tune = require 'tune'
    local deploy = pipeline.deploy_graph(a.model, a.weights or 'random')
    local program = lower.lower(deploy)
    local target = kernels.resolve_target(a.target)
    local results = tune.run(tune.kernels_of(program), { target = target, minutes = a.minutes, threads = a.threads,
      force = a.force })
    -- records that won alone must also win inside the model (tune.model_runoff)
    local sigs = {}
    for sig in pairs(results) do sigs[sig] = true end
    if next(sigs) and not a.no_runoff then
      tune.model_runoff(deploy, sigs, { target = target, threads = a.threads })
    end
  end,
}
