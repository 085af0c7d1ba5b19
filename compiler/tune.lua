-- foldc tune: per distinct kernel of a model, search the generator's schedule knobs by compiling
-- candidates and timing them on this machine (Terra-style: an ordinary loop keeping a `best`).
--
--   * The space (tune.space): conv2d register tile (tile_co vectors of output channels x tile_x
--     pixels, ranked by the generator's own FMA-per-load score), loop order (rows / channel tiles
--     outer), reduction blocking (ci_block), padding mode; linear: tile_co x tile_r; linear_tokens:
--     tile_co x tile_r, then the weight panel depth kb. Stage 1 tries
--     the tiles, stage 2 refines the best one. Kernels of other generators have no knobs here. The
--     vector width, the registers and the knobs' values are the target's (targets/<family>.lua).
--   * Validation: the generator's default schedule is the reference (itself checked against a
--     naive C reference by tests/kernels); a candidate whose output differs by more than `tol`
--     (relative to the largest output) is rejected before it is timed (compiler/tune_harness.c).
--   * Timing: cold, as in a model, where each layer's weights come from DRAM (the harness flushes
--     them from the caches before every timed call; opts.cold = false times hot repeated calls);
--     candidates of a batch run interleaved, round by round, best time per call; at the
--     end the default and the leading candidates run once more side by side (a run-off), and a
--     candidate replaces the default only if it is faster there by more than 1%.
--   * Run-off in the model (tune.model_runoff, after the kernels): the model is built with the
--     defaults and with each kernel's leading candidates, profiled interleaved, and each kernel
--     keeps the fastest in the model. Then the weight prefetch (tune.prefetch_runoff): the convs
--     with 256 KB of weights or more are built with the prefetch distances, and keep the fastest.
--   * Records: read and written in the target's own file for this CPU (schedules.own_path, its
--     "# cpu:" line naming the CPU and its measured peak); builds read the nearest (schedules.path).
--   * Algorithm run-off in the model (tune.algo_runoff, after the kernels, with their records):
--     per stride-1 3x3 conv signature, direct vs Winograd F(2x2) vs F(4x4), each forced in a build
--     of the whole model, profiled interleaved; the fastest whose model output matches the direct
--     variant's is recorded (`algo` lines, read by the lowering stage: lower.choose).
--   * Budget: --minutes for the whole model (verbs/tune.lua: a fifth kept for the algorithm
--     run-off when it has convs to choose), shared evenly by the kernels still to do.
--   * Resume: every measured candidate is appended to a log in the cache (tune/<target>/<key>.tsv)
--     and every finished kernel is saved to schedules/<target>/ at once, so an interrupted run
--     picks up where it stopped; finished kernels, and convs with an algorithm record, are skipped
--     unless --force.
local kernels = require 'kernels'
local schedules = require 'schedules'
local targets = require 'targets'
local hash = require 'hash'
local sys = require 'sys'

local ffi = require 'ffi'

local tune = {}

pcall(ffi.cdef, [[
  struct foldc_timespec { long tv_sec; long tv_nsec; };
  int clock_gettime(int clk, struct foldc_timespec *ts);
]])
local function monotonic()
  local ts = ffi.new('struct foldc_timespec')
  ffi.C.clock_gettime(1, ts)
  return tonumber(ts.tv_sec) + tonumber(ts.tv_nsec) * 1e-9
end
-- seconds on the monotonic clock (the budget's clock)
tune.clock = monotonic

local function pow2_at_most(n, cap)
  local v = 1
  while v * 2 <= n and v * 2 <= cap do v = v * 2 end
  return v
end

local function num(p, k, d) return tonumber(p[k]) or d end

-- Candidate schedules of a kernel: stage 1 (list of param tables) and refine(best) -> stage 2.
function tune.space(generator, p, target)
  local T = targets.resolve(target)
  local V, regs, knobs = T.lanes, T.registers, T.knobs[generator]
  if generator == 'conv2d' then
    local cin, cout, ow = num(p, 'cin'), num(p, 'cout'), num(p, 'out_w')
    local groups = num(p, 'groups', 1)
    local cpg = cin / groups
    local VW = pow2_at_most(cout, V)
    local depthwise = groups > 1 and cpg == 1 and cout == groups
    local tiles = {}
    for c = 1, knobs.tile_co do
      if c * VW <= cout then
        for x = 1, math.min(knobs.tile_x, ow) do
          local need = c * x + c + 1 -- accumulators, weight vectors, the broadcast input (halide/conv2d.cpp)
          -- an in-place kernel rounds its tiles to divisors of the output: try only those
          local divides = cout % (c * VW) == 0 and ow % x == 0
          if (depthwise or need <= regs) and (divides or not p.in_place or p.in_place == 'false') then
            local wc = math.ceil(cout / (c * VW)) * c * VW / cout
            local wx = math.ceil(ow / x) * x / ow
            local score = (depthwise and x or (c * x) / (c + x)) / (wc * wx)
            if depthwise and c * x > regs / 2 then score = 0 end
            tiles[#tiles + 1] = { c = c, x = x, score = score }
          end
        end
      end
    end
    table.sort(tiles, function(a, b) return a.score > b.score or (a.score == b.score and a.c * 100 + a.x < b.c * 100 + b.x) end)
    local stage1 = {}
    for i = 1, math.min(#tiles, 8) do
      stage1[#stage1 + 1] = { tile_co = tiles[i].c, tile_x = tiles[i].x }
    end
    for i = 1, math.min(#tiles, 2) do
      for _, o in ipairs({ 1, 2 }) do
        stage1[#stage1 + 1] = { tile_co = tiles[i].c, tile_x = tiles[i].x, loop_order = o }
      end
    end
    local function refine(best)
      local out = {}
      local function with(extra)
        local t = {}
        for k, v in pairs(best) do t[k] = v end
        for k, v in pairs(extra) do t[k] = v end
        out[#out + 1] = t
      end
      if not best.loop_order then
        with({ loop_order = 1 })
        with({ loop_order = 2 })
      end
      if not depthwise then
        for _, cb in ipairs(knobs.ci_block) do
          if cb < cpg and cpg % cb == 0 then with({ ci_block = cb }) end
        end
        if cpg > 4 then with({ ci_block = cpg }) end
      end
      -- software prefetch of the weights (they stream from DRAM in the model: tuned cold)
      local wbytes = 4 * cout * cpg * num(p, 'kw', 1) * num(p, 'kh', 1)
      if not depthwise and wbytes >= knobs.prefetch_bytes then
        for _, pf in ipairs(knobs.prefetch) do with({ prefetch = pf }) end
      end
      if num(p, 'pad_x', 0) > 0 or num(p, 'pad_y', 0) > 0 then
        with({ pad_mode = 1 })
        with({ pad_mode = 2 })
      end
      return out
    end
    return stage1, refine
  elseif generator == 'linear' then
    local cout, rows = num(p, 'cout'), num(p, 'rows', 1)
    local VW = pow2_at_most(cout, V)
    local stage1 = {}
    for _, c in ipairs(knobs.tile_co) do
      if c * VW <= cout then
        if rows == 1 then
          stage1[#stage1 + 1] = { tile_co = c }
        else
          for _, r in ipairs(knobs.tile_r) do
            if r <= rows and c * r + c + 1 <= regs then stage1[#stage1 + 1] = { tile_co = c, tile_r = r } end
          end
        end
      end
    end
    return stage1, function() return {} end
  elseif generator == 'linear_tokens' then
    -- register tile (tile_co vectors x tile_r rows), then the weight panel's depth kb
    local cin, cout, rows = num(p, 'cin'), num(p, 'cout'), num(p, 'rows', 1)
    local stage1 = {}
    for _, c in ipairs(knobs.tile_co) do
      if cout % (c * V) == 0 then
        for r = 2, math.min(knobs.tile_r, rows) do
          if c * r + c + 1 <= regs then stage1[#stage1 + 1] = { tile_co = c, tile_r = r } end
        end
      end
    end
    local function refine(best)
      local out = {}
      for _, kb in ipairs(knobs.kb) do
        if kb < cin and cin % kb == 0 then
          local c = {}
          for k, v in pairs(best) do c[k] = v end
          c.kb = kb
          out[#out + 1] = c
        end
      end
      return out
    end
    return stage1, refine
  end
  return nil
end

-- The distinct kernels of lowered programs: { sig, generator, gparams, dims, macs, name, count }, in
-- order of first use; count is the number of layers using it in the first program that has it.
function tune.kernels_of(...)
  local list, by = {}, {}
  for _, program in ipairs({ ... }) do
    local mine = {}
    for _, step in ipairs(program.steps) do
      if step.kind == 'kernel' then
        local sig = schedules.signature(step.generator, schedules.param_list(step.gparams))
        local k = by[sig]
        if not k then
          local dims = {}
          for i, a in ipairs(step.args) do dims[i] = a.dims end
          k = { sig = sig, generator = step.generator, gparams = step.gparams, dims = dims, macs = step.macs,
                name = step.name, count = 0 }
          by[sig] = k
          list[#list + 1] = k
          mine[sig] = true
        end
        if mine[sig] then k.count = k.count + 1 end
      end
    end
  end
  return list
end

local function merged(gparams, sched)
  local t = {}
  for k, v in pairs(gparams) do t[k] = v end
  for k, v in pairs(sched) do t[k] = v end
  return t
end

-- Compile and run the harness over { default, cands... }; returns per candidate { err, us }.
local function measure(k, cands, target, opts)
  local descs = { kernels.describe(k.generator, schedules.param_list(k.gparams), target) }
  for _, c in ipairs(cands) do
    descs[#descs + 1] = kernels.describe(k.generator, schedules.param_list(merged(k.gparams, c)), target)
  end
  local runtime = kernels.build(descs, target, { keep_going = true, quiet = true })
  -- a failure can be transient (the generator binary being rebuilt meanwhile): retry those once
  local again = {}
  for _, d in ipairs(descs) do
    if d.failed then
      d.failed = nil
      again[#again + 1] = d
    end
  end
  if #again > 0 then kernels.build(again, target, { keep_going = true, quiet = true }) end
  local work = sys.tmpdir('foldc-tune')
  local nargs = #k.dims
  local h = { '/* generated by foldc tune */', '#define NARGS ' .. nargs }
  local ok_descs, index = {}, {}
  for i, d in ipairs(descs) do
    if not d.failed then
      ok_descs[#ok_descs + 1] = d
      index[i] = #ok_descs
    end
  end
  if not index[1] then
    sys.rm_rf(work)
    error('tune: the default schedule of ' .. k.sig .. ' does not compile', 0)
  end
  h[#h + 1] = '#define NCANDS ' .. #ok_descs
  local r, e, s = {}, {}, {}
  for i, dims in ipairs(k.dims) do
    r[i] = tostring(#dims)
    local ee, ss = {}, {}
    for j = 1, 4 do
      ee[j] = tostring(dims[j] and dims[j][1] or 1)
      ss[j] = tostring(dims[j] and dims[j][2] or 0)
    end
    e[i] = '{' .. table.concat(ee, ',') .. '}'
    s[i] = '{' .. table.concat(ss, ',') .. '}'
  end
  h[#h + 1] = 'static const int ranks[NARGS] = {' .. table.concat(r, ',') .. '};'
  h[#h + 1] = 'static const int extents[NARGS][4] = {' .. table.concat(e, ',') .. '};'
  h[#h + 1] = 'static const int strides[NARGS][4] = {' .. table.concat(s, ',') .. '};'
  local ptypes, pargs = {}, {}
  for i = 1, nargs do
    ptypes[i] = 'struct halide_buffer_t *'
    pargs[i] = '&buf[' .. (i - 1) .. ']'
  end
  h[#h + 1] = 'typedef int (*kfn_t)(void const *, ' .. table.concat(ptypes, ', ') .. ');'
  h[#h + 1] = '#define CALL(f) (f)(NULL, ' .. table.concat(pargs, ', ') .. ')'
  local seen, names, objs = {}, {}, {}
  for _, d in ipairs(ok_descs) do
    if not seen[d.fn] then
      seen[d.fn] = true
      h[#h + 1] = '#include "' .. d.header .. '"'
      objs[#objs + 1] = d.object
    end
    names[#names + 1] = d.fn
  end
  h[#h + 1] = 'static const kfn_t cands[NCANDS] = {' .. table.concat(names, ', ') .. '};'
  sys.write_file(work .. '/tune_case.h', table.concat(h, '\n') .. '\n')
  local root = os.getenv('FOLDC_ROOT') or '.'
  local exe = work .. '/harness'
  -- the harness flushes caches the target's way (tune_harness.c: FOLDC_FLUSH_*)
  local argv = { os.getenv('CC') or 'cc', '-O2', '-std=c99', '-I' .. work, '-I/usr/include/halide14',
    '-DFOLDC_FLUSH_' .. targets.resolve(target).flush:upper(), root .. '/compiler/tune_harness.c' }
  for _, o in ipairs(objs) do argv[#argv + 1] = o end
  for _, a in ipairs({ runtime.object, '-lpthread', '-ldl', '-lm', '-o', exe }) do argv[#argv + 1] = a end
  local ok, err = pcall(sys.run_quiet, argv, 'compiling the tuning harness')
  if not ok then
    sys.rm_rf(work)
    error(err, 0)
  end
  local out = sys.run_quiet({ exe, tostring(opts.threads or 1), tostring(opts.rounds or 5), tostring(opts.batch_ms or 15),
    tostring(opts.tol or 1e-5), opts.cold == false and '0' or '1' }, 'running the tuning harness')
  sys.rm_rf(work)
  local got = {}
  for i, e2, us in out:gmatch('cand (%d+) err (%S+) us (%S+)') do
    got[tonumber(i) + 1] = { err = tonumber(e2) or math.huge, us = tonumber(us) }
  end
  local res = {}
  for i = 1, #descs do
    local g = index[i] and got[index[i]]
    res[i] = g and { err = g.err, us = (g.us and g.us > 0) and g.us or nil } or { err = math.huge, failed = true }
  end
  return res
end

-- ' relu' (the kernel's fused activation), '' for none.
local function act_suffix(p)
  return (p.act and p.act ~= 'none') and (' ' .. p.act) or ''
end

local function describe_kernel(k)
  local p = k.gparams
  if k.generator == 'conv2d' then
    local proj = p.proj_cin and string.format(' +proj %d s%d', p.proj_cin, p.proj_stride or 1) or ''
    return string.format('conv2d %dx%d s%d %d->%d %dx%d%s%s%s%s', p.kh, p.kw, p.stride_x, p.cin, p.cout, p.out_w,
      p.out_h, (p.groups or 1) > 1 and (' g' .. p.groups) or '', proj, p.residual and ' +res' or '',
      act_suffix(p))
  elseif k.generator == 'linear' then
    return string.format('linear %d->%d rows %d%s', p.cin, p.cout, p.rows or 1, act_suffix(p))
  elseif k.generator == 'linear_tokens' then
    return string.format('linear_tokens %d->%d rows %d%s%s', p.cin, p.cout, p.rows, act_suffix(p),
      p.residual and ' +res' or '')
  end
  return k.generator
end

local function fmt_time(s)
  if s >= 60 then return string.format('%dm%02ds', math.floor(s / 60), math.floor(s % 60)) end
  return string.format('%.0fs', s)
end

local function log_path(target, k, opts)
  return kernels.cache_dir() .. '/tune/' .. target .. '/' ..
    hash.hex(hash.string(k.sig .. '|t' .. (opts.threads or 1))) .. '.tsv'
end

-- Tune the kernels (from tune.kernels_of). opts: target (resolved), minutes, force, threads, out
-- (a file for progress lines), extra (schedule tables always tried: tests), tol, now (clock).
-- Returns { [sig] = { best = params, gflops, default_gflops, tried, rejected } }.
function tune.run(list, opts)
  local target = opts.target
  local out = opts.out or io.stderr
  local clock = opts.now or monotonic
  local db = schedules.load_own(target)
  local todo = {}
  for _, k in ipairs(list) do
    local stage1 = tune.space(k.generator, k.gparams, target)
    if stage1 and (opts.force or not db[k.sig]) then todo[#todo + 1] = k end
  end
  local results = {}
  local t_start = clock()
  local budget = (opts.minutes or 15) * 60
  out:write(string.format('foldc tune: %d of %d distinct kernels to tune for %s (%d already recorded or without knobs), budget %s\n',
    #todo, #list, target, #list - #todo, fmt_time(budget)))
  for i, k in ipairs(todo) do
    local t0 = clock()
    local left = budget - (t0 - t_start)
    local share = left / (#todo - i + 1)
    local stage1, refine = tune.space(k.generator, k.gparams, target)
    local lp = log_path(target, k, opts)
    sys.mkdir_p(lp:match('^(.*)/[^/]*$'))
    -- resume: candidates measured before
    local measured = {}
    if not opts.force and sys.exists(lp) then
      for line in io.lines(lp) do
        local sched, us, err = line:match('^([^\t]+)\t(%S+)\t(%S+)$')
        -- a candidate that did not compile or run (err inf) is tried again
        if sched and tonumber(err) and tonumber(err) < math.huge then measured[sched] = { us = tonumber(us), err = tonumber(err) } end
      end
    end
    local logf = assert(io.open(lp, opts.force and 'w' or 'a'))
    if logf:seek('end') == 0 then logf:write('# ', k.sig, '\n') end
    local tried, rejected, fresh = 0, 0, 0
    local function run_batch(cands)
      local todo_c, keys = {}, {}
      for _, c in ipairs(cands) do
        local key = schedules.format_params(c)
        if not measured[key] and not keys[key] and key ~= 'default' then
          keys[key] = true
          todo_c[#todo_c + 1] = c
        end
      end
      if #todo_c == 0 then return end
      local res = measure(k, todo_c, target, opts)
      if not measured.default and res[1].us then
        measured.default = { us = res[1].us, err = 0 }
        logf:write('default\t', res[1].us, '\t0\n')
      end
      for j, c in ipairs(todo_c) do
        local r = res[j + 1]
        local key = schedules.format_params(c)
        measured[key] = { us = r.us or -1, err = r.err }
        logf:write(key, '\t', r.us or -1, '\t', r.err == math.huge and 'inf' or r.err, '\n')
        fresh = fresh + 1
      end
      logf:flush()
    end
    local function best_of()
      local bk, bus
      for key, m in pairs(measured) do
        if m.us and m.us > 0 and m.err <= (opts.tol or 1e-5) and (not bus or m.us < bus) then bk, bus = key, m.us end
      end
      return bk, bus
    end
    local batch = {}
    for _, c in ipairs(opts.extra or {}) do batch[#batch + 1] = c end
    for _, c in ipairs(stage1) do batch[#batch + 1] = c end
    for s = 1, #batch, 6 do
      run_batch({ unpack(batch, s, math.min(#batch, s + 5)) })
      if clock() - t0 > share and s > 1 then break end
    end
    local bk = best_of()
    if bk and clock() - t0 <= share then
      run_batch(refine(schedules.parse_params(bk)))
    end
    -- run-off: the default against the three best, side by side
    local ranked = {}
    for key, m in pairs(measured) do
      tried = tried + 1
      if not (m.err <= (opts.tol or 1e-5)) then rejected = rejected + 1
      elseif key ~= 'default' and m.us and m.us > 0 then ranked[#ranked + 1] = { key = key, us = m.us } end
    end
    table.sort(ranked, function(a, b) return a.us < b.us end)
    -- the three best, and the best of each loop order they leave out: timed alone (cold) the loop
    -- orders rank differently than inside the model (resnet50's 3x3/2 on 512 channels: the three
    -- best alone were all rows-outer, 10-20% slower in the model than a channel-tiles-outer one)
    local finals, orders = {}, {}
    for j = 1, math.min(3, #ranked) do
      finals[j] = schedules.parse_params(ranked[j].key)
      orders[tostring(finals[j].loop_order)] = true
    end
    for j = 4, #ranked do
      local f = schedules.parse_params(ranked[j].key)
      if not orders[tostring(f.loop_order)] then
        orders[tostring(f.loop_order)] = true
        finals[#finals + 1] = f
      end
    end
    local best, best_us, def_us = {}, nil, nil
    local ranked_finals = {}
    if #finals > 0 then
      local res = measure(k, finals, target, { threads = opts.threads, rounds = 7, batch_ms = opts.batch_ms, tol = opts.tol,
        cold = opts.cold })
      def_us = res[1].us
      best_us = def_us
      local ok = {}
      for j = 1, #finals do
        local r = res[j + 1]
        if r.us and r.err <= (opts.tol or 1e-5) then
          ok[#ok + 1] = { params = finals[j], us = r.us }
          if r.us < best_us * 0.99 then best, best_us = finals[j], r.us end
        end
      end
      table.sort(ok, function(a, b) return a.us < b.us end)
      for j, f in ipairs(ok) do ranked_finals[j] = f.params end
    else
      def_us = measured.default and measured.default.us
      best_us = def_us
    end
    logf:close()
    local gf = function(us) return us and (2 * k.macs / (us * 1e-6) * 1e-9) or 0 end
    local comment = string.format('# %.1f GFLOP/s vs %.1f default (%.3f vs %.3f ms), %d threads, %d candidates, %s',
      gf(best_us), gf(def_us), (best_us or 0) / 1e3, (def_us or 0) / 1e3, opts.threads or 1, tried, os.date('!%Y-%m-%d'))
    if k.macs == 0 then
      comment = string.format('# %.3f vs %.3f ms default, %d threads, %d candidates, %s', (best_us or 0) / 1e3,
        (def_us or 0) / 1e3, opts.threads or 1, tried, os.date('!%Y-%m-%d'))
    end
    db = schedules.load_own(target)
    db[k.sig] = { params = best, comment = comment }
    if not opts.dry_run then schedules.save(target, db) end
    results[k.sig] = { best = best, finals = ranked_finals, us = best_us, default_us = def_us, gflops = gf(best_us),
                       default_gflops = gf(def_us), tried = tried, rejected = rejected, fresh = fresh }
    local elapsed = clock() - t_start
    out:write(string.format('[%d/%d] %-38s best %6.1f GFLOP/s (%s) default %6.1f, %d candidates (%d rejected), %s; ETA %s\n',
      i, #todo, describe_kernel(k), gf(best_us), schedules.format_params(best), gf(def_us), tried, rejected,
      fmt_time(clock() - t0), fmt_time(elapsed / i * (#todo - i))))
    out:flush()
  end
  out:write(string.format('foldc tune: done in %s; records in %s\n', fmt_time(clock() - t_start),
    schedules.own_path(target) or '(none)'))
  return results
end

-- Build the model once per variant ({ name, conv_algo (lower.lower), drop = { [signature] = true }:
-- schedule records left out, set = { [signature] = params }: records replaced }) and profile the bundles interleaved: up to `rounds` rounds, each
-- running every variant's per-layer profile `runs` times in turn, min per layer over the rounds
-- (after `min_rounds`, no new round starts past `deadline` on the clock `now`). With `outputs`, the
-- first round also returns each variant's output for the example program's fixed input.
-- Returns { best = { [variant] = { [layer] = ms } }, outputs = { [variant] = tensor }, rounds = n }.
local function profile_variants(graph, variants, opts)
  local backend = require 'backend'
  local dkjson = require 'dkjson'
  local npy = require 'weights.npy'
  local clock = opts.now or monotonic
  local dir = sys.tmpdir('foldc-runoff')
  local real_load = schedules.load
  local ok, res = pcall(function()
    local infos = {}
    for i, v in ipairs(variants) do
      if v.drop or v.set then
        schedules.load = function(t)
          local d = real_load(t)
          for sig in pairs(v.drop or {}) do d[sig] = nil end
          for sig, params in pairs(v.set or {}) do d[sig] = { params = params } end
          return d
        end
      end
      local built, info = pcall(backend.build, graph, dir .. '/' .. v.name,
        { target = opts.target, weights = true, conv_algo = v.conv_algo })
      schedules.load = real_load
      if not built then error(info, 0) end
      sys.run_quiet({ 'make', '-s', '-C', info.dir }, 'compiling the bundle')
      infos[i] = info
    end
    local best, outputs, rounds = {}, {}, 0
    for i = 1, #variants do best[i] = {} end
    for r = 1, opts.rounds or 4 do
      if r > (opts.min_rounds or 1) and opts.deadline and clock() > opts.deadline then break end
      for i, info in ipairs(infos) do
        local argv = { info.dir .. '/' .. info.name .. '_main', '--weights', info.dir .. '/' .. info.name .. '.weights',
          '--runs', tostring(opts.runs or 10), '--threads', tostring(opts.threads or 1), '--profile', '--json' }
        if r == 1 and opts.outputs then
          argv[#argv + 1] = '--output'
          argv[#argv + 1] = dir .. '/' .. variants[i].name .. '.out.npy'
        end
        local text = sys.capture(argv)
        local prof = dkjson.decode(text:match('(%b{})%s*$'))
        for _, l in ipairs(prof.layers) do
          if not best[i][l.name] or l.ms < best[i][l.name] then best[i][l.name] = l.ms end
        end
        if r == 1 and opts.outputs then outputs[i] = npy.read(dir .. '/' .. variants[i].name .. '.out.npy') end
      end
      rounds = r
    end
    return { best = best, outputs = outputs, rounds = rounds }
  end)
  schedules.load = real_load
  sys.rm_rf(dir)
  if not ok then error(res, 0) end
  return res
end

-- Run-offs in the model: the model is built once per variant, the bundles' per-layer profiles run
-- interleaved (`rounds` x `runs`, min per layer), and each kernel keeps the schedule with the lowest
-- time summed over its layers; the base variant wins unless a candidate beats it by more than 1%.
-- cand: { [signature] = { params, ... } } (variant j: every kernel's j-th candidate); base =
-- 'default' (the base variant drops the kernels' records; a loss turns the record to `default`)
-- or 'record' (the base variant is the kernels' records; a loss keeps them). The times go into the
-- record's comment after `label`, replacing an earlier note with the same label (and, for the
-- default base, every later note: it starts the chain).
local function runoff_in_model(graph, cand, opts, base, label)
  local lower = require 'lower'
  local target = opts.target
  local depth = 0
  for _, list in pairs(cand) do depth = math.max(depth, #list) end
  -- layer name -> kernel signature
  local sig_of = {}
  for _, step in ipairs(lower.lower(graph, { target = target }).steps) do
    if step.kind == 'kernel' then
      sig_of[step.name] = schedules.signature(step.generator, schedules.param_list(step.gparams))
    end
  end
  local variants = { { name = base, drop = base == 'default' and cand or nil } }
  for j = 1, depth do
    local set, drop = {}, {}
    for sig, list in pairs(cand) do
      if list[j] then set[sig] = list[j] elseif base == 'default' then drop[sig] = true end
    end
    variants[#variants + 1] = { name = 'cand' .. j, set = set, drop = drop }
  end
  local best = profile_variants(graph, variants,
    { target = target, threads = opts.threads, rounds = opts.rounds or 4, runs = opts.runs }).best
  -- per signature and variant: the time summed over its layers
  local t = {}
  for name, sig in pairs(sig_of) do
    if cand[sig] then
      t[sig] = t[sig] or {}
      for v = 1, #variants do
        t[sig][v] = best[v][name] and (t[sig][v] or 0) + best[v][name] or math.huge
      end
    end
  end
  local kept, reverted = 0, 0
  local db = schedules.load_own(target)
  local esc = label:gsub('%p', '%%%0')
  for sig, list in pairs(cand) do
    local r = db[sig] or { params = {} }
    local comment = (r.comment or '#'):gsub(base == 'default' and '; ' .. esc .. '.*$' or '; ' .. esc .. '[^;]*', '')
    local times = t[sig]
    if times then
      local pick = 1
      for v = 2, #variants do
        if list[v - 1] and times[v] < times[pick] and times[v] < times[1] * 0.99 then pick = v end
      end
      local parts = { string.format('%s %.4f', base == 'default' and 'default' or schedules.format_params(r.params), times[1]) }
      for v = 2, #variants do
        if list[v - 1] then
          parts[#parts + 1] = string.format('%s %.4f', schedules.format_params(list[v - 1]), times[v])
        end
      end
      local note = '; ' .. label .. ' (ms): ' .. table.concat(parts, ', ')
      if pick > 1 then
        kept = kept + 1
        db[sig] = { params = list[pick - 1], comment = comment .. note }
      else
        reverted = reverted + 1
        db[sig] = { params = base == 'default' and {} or r.params, comment = comment .. note .. ': ' .. base .. ' kept' }
      end
    end
  end
  if not opts.dry_run then schedules.save(target, db) end
  return { kept = kept, reverted = reverted, depth = depth }
end

-- The run-off in the model: a kernel timed alone (even cold) does not see the cache state it
-- meets inside the model (which activations, residuals and output lines are still cached after
-- the layers before it), so the schedule that wins alone can lose there (resnet50's 64->256 1x1
-- +residual on 56x56: 107% of peak with the default, 68% with the schedule that won alone; its
-- 256->1024 +residual on 14x14: 6x4 tiles won alone and lost in the model by 4%).
-- For every kernel just tuned the model is built with the default schedule and with each of its
-- candidates of the cold run-off (its three best and the best of each loop order they leave out,
-- ranked), and each kernel keeps the fastest in the model (runoff_in_model, base 'default').
-- graph: the deploy graph; finals: { [signature] = { params, ... } } (tune.run's results' finals).
-- Returns { kept = n, reverted = n } (reverted: the default kept).
function tune.model_runoff(graph, finals, opts)
  local out = opts.out or io.stderr
  local cand = {}
  for sig, list in pairs(finals) do
    if #list > 0 then cand[sig] = list end
  end
  if not next(cand) then return { kept = 0, reverted = 0 } end
  local r = runoff_in_model(graph, cand, opts, 'default', 'in the model')
  out:write(string.format('foldc tune: run-off in the model (default and up to %d candidates per kernel): %d kernel(s) with a ' ..
    'tuned schedule, %d with the default\n', r.depth, r.kept, r.reverted))
  return { kept = r.kept, reverted = r.reverted }
end

-- The weight prefetch, chosen in the model: a conv's weights come from DRAM in the model (resnet50
-- holds 102 MB of them, its last-level cache 32 MB) while its input and residual are mostly still
-- cached from the layers before; timed alone, cold, the weights, residual and output all come from
-- DRAM at once and the prefetch competes with those misses, so the distance that wins alone is not the one that
-- wins there: resnet50's 256->1024 1x1 +residual on 14x14 (1 MB of
-- weights) ran 0.44 ms without prefetch, 0.41 ms prefetching 64 channels ahead, in the model; its
-- 1024->256 1x1 lost 7% with the same prefetch. For every direct conv of the graph with a record and
-- at least 256 KB of weights, the model is built with the record and with the record's prefetch
-- set to each other of off, 16, 32 and 64 channels ahead, and the fastest in the model is kept
-- (runoff_in_model, base 'record'). opts.only: { [signature] = true }, the kernels to consider
-- (foldc tune: those it just tuned). Returns { kept = n, reverted = n } (reverted: the record kept).
function tune.prefetch_runoff(graph, opts)
  local lower = require 'lower'
  local out = opts.out or io.stderr
  local db = schedules.load_own(opts.target)
  local knobs = targets.resolve(opts.target).knobs.conv2d
  local cand, n = {}, 0
  for _, step in ipairs(lower.lower(graph, { target = opts.target }).steps) do
    local g = step.kind == 'kernel' and step.generator == 'conv2d' and step.gparams
    if g then
      local sig = schedules.signature(step.generator, schedules.param_list(g))
      local rec = db[sig]
      local groups = tonumber(g.groups) or 1
      local wbytes = 4 * g.cout * (g.cin / groups) * g.kw * g.kh
      if rec and not cand[sig] and (not opts.only or opts.only[sig]) and wbytes >= knobs.prefetch_bytes and g.cin > groups then
        -- the record's distance (without one: the generator's default, halide/conv2d.cpp: 32
        -- channels ahead from 2 MB of weights, projection included, on at most 64 output pixels,
        -- else off) is the base
        local own = tonumber(rec.params.prefetch)
        if not own or own == 0 then
          local big = 4 * g.cout * ((g.cin / groups) * g.kw * g.kh + (tonumber(g.proj_cin) or 0)) >= 2 * 1024 * 1024
          own = (big and g.out_w * g.out_h <= 64) and 32 or -1
        end
        local list = {}
        for _, pf in ipairs(knobs.prefetch) do
          if own ~= pf then
            local c = { prefetch = pf }
            for k, v in pairs(rec.params) do if k ~= 'prefetch' then c[k] = v end end
            list[#list + 1] = c
          end
        end
        cand[sig], n = list, n + 1
      end
    end
  end
  if n == 0 then return { kept = 0, reverted = 0 } end
  local r = runoff_in_model(graph, cand, opts, 'record', 'prefetch in the model')
  out:write(string.format('foldc tune: weight prefetch chosen in the model for %d kernel(s): %d changed, %d kept\n', n,
    r.kept, r.reverted))
  return { kept = r.kept, reverted = r.reverted }
end

-- The convs of a deploy graph that can run as Winograd (winograd.eligible), one entry per algorithm
-- record key (lower.algo_key: the direct kernel's signature), in graph order:
-- { { key, gparams (the direct kernel's), layers = { layer names } } }; and those of them without
-- an algorithm record for target (all with force): the algorithm run-off's work.
function tune.algo_convs(graph, target, force)
  local ir = require 'ir'
  local winograd = require 'winograd'
  local lower = require 'lower'
  local T = targets.resolve(target)
  local db = schedules.load_own(target)
  local list, todo, by = {}, {}, {}
  for _, node in ipairs(graph.nodes) do
    if node.op == 'conv2d' and winograd.eligible(node) then
      local key, gparams = lower.algo_key(node, T)
      local c = by[key]
      if not c then
        c = { key = key, gparams = gparams, layers = {} }
        by[key] = c
        list[#list + 1] = c
        if force or not db[key] then todo[#todo + 1] = c end
      end
      c.layers[#c.layers + 1] = ir.node_name(node)
    end
  end
  return list, todo
end

-- The algorithm run-off in the model (after the kernels, with their records): the model is built
-- once per algorithm of schedules.ALGOS (direct, winograd2, winograd4), each forced for every
-- eligible conv (lower.lower's conv_algo), every kernel with its recorded or default schedule; the
-- bundles' per-layer profiles run interleaved (profile_variants); a variant whose output differs
-- from the direct variant's by more than `tol` (1e-4, relative to the largest output) may not win.
-- Per conv signature still without an algorithm record (all with `force`), the algorithm with the
-- lowest time summed over the layers sharing the signature is recorded, the times in the comment.
-- opts: target, threads, force, rounds, runs, deadline (on the clock `now`: no new round after it,
-- but at least 2), tol, out, dry_run. Returns { chosen = { [key] = algo }, ms = { [key] = { [algo]
-- = ms } }, err = { [algo] = relative output difference }, rounds = n }.
function tune.algo_runoff(graph, opts)
  local interpreter = require 'interpreter'
  local target = opts.target
  local out = opts.out or io.stderr
  local clock = opts.now or monotonic
  local tol = opts.tol or 1e-4
  local t0 = clock()
  local convs, todo = tune.algo_convs(graph, target, opts.force)
  local layers = 0
  for _, c in ipairs(todo) do layers = layers + #c.layers end
  local algos = schedules.ALGOS
  out:write(string.format('foldc tune: algorithm run-off in the model: %d of %d eligible conv signatures to choose (%d layers; %d already recorded), variants %s\n',
    #todo, #convs, layers, #convs - #todo, table.concat(algos, ', ')))
  local result = { chosen = {}, ms = {}, err = {}, rounds = 0 }
  if #todo == 0 then return result end
  local variants = {}
  for i, algo in ipairs(algos) do variants[i] = { name = algo, conv_algo = algo } end
  local runs = opts.runs or 10
  local prof = profile_variants(graph, variants, { target = target, threads = opts.threads, rounds = opts.rounds or 4,
    min_rounds = 2, runs = runs, deadline = opts.deadline, now = clock, outputs = true })
  result.rounds = prof.rounds
  local valid = {}
  for i, algo in ipairs(algos) do
    local rel = interpreter.rel_diff(prof.outputs[i], prof.outputs[1])
    result.err[algo] = rel
    valid[i] = i == 1 or rel <= tol -- direct is the reference
    if not valid[i] then
      out:write(string.format('foldc tune: %s rejected: the model output differs from direct by %.2g (relative; tolerance %g)\n',
        algo, rel, tol))
    end
  end
  local db = schedules.load_own(target)
  local counts = {}
  for j, c in ipairs(todo) do
    local ms, parts, win = {}, {}, nil
    for i, algo in ipairs(algos) do
      local t = 0
      for _, name in ipairs(c.layers) do
        local v = prof.best[i][name]
        if not v then error('tune: layer ' .. name .. ' is missing from the profile of the ' .. algo .. ' variant', 0) end
        t = t + v
      end
      ms[algo] = t
      parts[#parts + 1] = string.format(t < 0.1 and '%s %.4f ms' or '%s %.3f ms', algo, t) ..
        (valid[i] and '' or string.format(' (rejected: output off by %.2g)', result.err[algo]))
      if valid[i] and (not win or t < ms[win]) then win = algo end
    end
    result.chosen[c.key], result.ms[c.key] = win, ms
    counts[win] = (counts[win] or 0) + 1
    db[c.key] = { algo = win, comment = string.format('# %s in the model (%d layer%s, min of %d x %d runs), %d threads, %s',
      table.concat(parts, ', '), #c.layers, #c.layers > 1 and 's' or '', prof.rounds, runs, opts.threads or 1,
      os.date('!%Y-%m-%d')) }
    out:write(string.format('[%d/%d] %-46s %-9s %s\n', j, #todo,
      describe_kernel({ generator = 'conv2d', gparams = c.gparams }) .. (#c.layers > 1 and (' (x' .. #c.layers .. ')') or ''),
      win, table.concat(parts, ', ')))
  end
  if not opts.dry_run then schedules.save(target, db) end
  local summary = {}
  for _, algo in ipairs(algos) do
    if counts[algo] then summary[#summary + 1] = counts[algo] .. ' ' .. algo end
  end
  out:write(string.format('foldc tune: algorithm run-off done in %s (%d rounds): %s; records in %s\n', fmt_time(clock() - t0),
    prof.rounds, table.concat(summary, ', '), schedules.own_path(target) or '(none)'))
  out:flush()
  return result
end

return tune
