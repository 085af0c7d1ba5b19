-- foldc tune: search schedules for every distinct kernel of a model by compiling and timing
-- candidates on this machine, then choose each stride-1 3x3 conv's algorithm (direct or Winograd)
-- by timing them in the whole model (compiler/tune.lua); results go to schedules/<target>/ and are
-- used by every later build for that target. A target this machine cannot run natively is refused
-- before anything runs (timings under an emulator mean nothing), and so is a GPU target (no GPU
-- search yet).
local cli = require 'cli'
local numeric_args = require 'numeric_args'

return {
  help = 'Search kernel schedules and convolution algorithms on this machine; record the best in schedules/<target>/.',
  define = function(c)
    cli.model_args(c)
    c:option('--minutes', 'Time budget for the whole model (above 0, at most 10080: a week).', '15')
      :convert(numeric_args.positive('--minutes', 10080))
    c:option('--threads', 'Threads the kernels are timed with: 1 to 256, or 0 for one per core.', '1')
      :convert(numeric_args.threads('--threads'))
    c:flag('--force', 'Re-tune kernels and convolution algorithms that already have a record (and forget logged measurements).')
    c:flag('--no-runoff', 'Skip the run-offs in the model (each kernel gets the fastest, inside the whole model, of its default and its best candidates timed alone; then the weight prefetch of the convs with 256 KB of weights or more).')
    c:flag('--no-algo', 'Skip the algorithm run-off (direct vs Winograd F(2x2) vs F(4x4) per stride-1 3x3 conv, in the model).')
  end,
  run = function(a)
    local pipeline = require 'pipeline'
    local lower = require 'lower'
    local kernels = require 'kernels'
    local tune = require 'tune'
    local t0 = tune.clock()
    local target = kernels.resolve_target(a.target)
    local T = require('targets').resolve(target)
    if T.gpu then
      error('tune: --target "' .. a.target .. '": GPU schedules are not tuned yet (their gpu_* knobs take the '
        .. 'generators\' defaults); tune the CPU kernels with a CPU target', 0)
    end
    if not T:native_tier() then
      error('tune: --target "' .. a.target .. '": this machine (' .. require('targets').host() ..
        ') cannot run it natively, and timings under an emulator mean nothing; tune on such a CPU', 0)
    end
    local deploy = pipeline.deploy_graph(a.model, a.weights or 'random')
    -- the algorithm run-off, when some eligible conv still needs a record, gets a fifth of the
    -- budget, and the kernels of the model as it is built now are joined by the direct kernels of
    -- its eligible convs (so direct meets Winograd with a tuned schedule)
    local algo = not a.no_algo and #select(2, tune.algo_convs(deploy, target, a.force)) > 0
    local programs = { lower.lower(deploy, { target = target }) }
    if algo then programs[2] = lower.lower(deploy, { target = target, conv_algo = 'direct' }) end
    local results = tune.run(tune.kernels_of(unpack(programs)), { target = target,
      minutes = a.minutes * (algo and 0.8 or 1), threads = a.threads, force = a.force })
    -- the schedule is chosen inside the model, among the default and the best candidates timed
    -- alone (tune.model_runoff), then the weight prefetch of the big convs (tune.prefetch_runoff)
    local finals = {}
    for sig, r in pairs(results) do finals[sig] = r.finals end
    if next(finals) and not a.no_runoff then
      tune.model_runoff(deploy, finals, { target = target, threads = a.threads })
      tune.prefetch_runoff(deploy, { target = target, threads = a.threads, only = finals })
    end
    if not a.no_algo then
      tune.algo_runoff(deploy, { target = target, threads = a.threads, force = a.force, deadline = t0 + a.minutes * 60 })
    end
  end,
}
