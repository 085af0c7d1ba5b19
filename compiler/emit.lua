-- Emission: a lowered, planned and compiled program becomes the bundle's files -- C glue from
-- templates/ (lua-cosmo), the weights blob, the kernel archive, headers and a JSON report. All
-- output is deterministic, so regenerating a bundle gives no diff. What runs is visible: per layer
-- the JSON and a comment beside the glue's kernel call name the op, the algorithm and why the
-- lowering chose it (the facts lower.lua sets on each step: it derives nothing here), the generator
-- with every parameter the kernel was built with, the schedule record used (or "default"), the
-- shapes, the MACs and the target. A batch of N images (program.batch) shows in the shapes; the
-- glue runs the image-major steps (lower.lua) for image 0, then image 1, ... (ctx->image), their
-- views of N-image buffers moved to that image, and a layer-major step marked images = N once per
-- image, each activation view moved by one image of its buffer per call (lower.batch_step).
local ffi = require 'ffi'
local cosmo = require 'cosmo'
local dkjson = require 'dkjson'
local hash = require 'hash'
local sys = require 'sys'
local lower = require 'lower'
local memory_plan = require 'memory_plan'
local schedules = require 'schedules'
local targets = require 'targets'

local emit = {}

emit.VERSION = '0.1'
local root = os.getenv('FOLDC_ROOT') or '.'
local HALIDE_RUNTIME_H = '/usr/include/halide14/HalideRuntime.h'

-- A C identifier from a model name: ASCII letters, digits and '_' only (so it is safe in C, file
-- names, the Makefile and CMakeLists.txt), never empty or starting with a digit, at most 64
-- characters (a longer one keeps its start and ends in a hash of the whole name).
function emit.c_name(name)
  local s = tostring(name):lower():gsub('[^%w_]', '_')
  if s == '' or s:match('^%d') then s = 'm_' .. s end
  if #s > 64 then s = s:sub(1, 47) .. '_' .. hash.hex(hash.string(name)) end
  return s
end

-- Text from the description (layer and weight names, its path) as it goes into the C glue: safe
-- both inside a "string literal" and inside a /* comment */. Printable ASCII stays, except \ " ?
-- (escapes, trigraphs) and * (comment ends), which become octal escapes like every other byte.
local function c_text(s)
  return (tostring(s):gsub('.', function(c)
    if c:match('^[\32-\126]$') and not c:match('^[\\"?*]$') then return c end
    return string.format('\\%03o', c:byte())
  end))
end

-- Weights layout: header, table, then every tensor 64-byte aligned. Sets w.offset / w.bytes.
function emit.layout_weights(weights)
  local offset = memory_plan.align(64 + 16 * #weights)
  for _, w in ipairs(weights) do
    w.bytes = 4 * w.tensor.numel
    w.offset = offset
    offset = offset + memory_plan.align(w.bytes)
  end
  return offset
end

local function put_u32(p, v) ffi.cast('uint32_t *', p)[0] = v end
local function put_u64(p, v) ffi.cast('uint64_t *', p)[0] = v end

-- The weights blob (see runtime/foldc_runtime.h), written to path atomically.
function emit.write_weights(path, weights, total, model_id)
  local buf = ffi.new('uint8_t[?]', total)
  ffi.copy(buf, 'FOLDCWTS', 8)
  put_u32(buf + 8, 1)
  put_u32(buf + 12, #weights)
  put_u64(buf + 16, total)
  put_u64(buf + 24, model_id)
  for i, w in ipairs(weights) do
    put_u64(buf + 64 + 16 * (i - 1), w.offset)
    put_u64(buf + 64 + 16 * (i - 1) + 8, w.bytes)
    ffi.copy(buf + w.offset, w.tensor.data, w.bytes)
  end
  put_u64(buf + 32, hash.words(buf + 64, total - 64))
  local ok, err = sys.write_atomic(path, function(f) return f:write(ffi.string(buf, total)) end)
  if not ok then error(path .. ': ' .. err, 0) end
end

local function shape_macros(shape)
  local list = { { name = 'RANK', value = #shape } }
  local size = 1
  for i, d in ipairs(shape) do
    list[#list + 1] = { name = 'DIM' .. (i - 1), value = d }
    size = size * d
  end
  if #shape == 4 then
    list[#list + 1] = { name = 'C', value = shape[2] }
    list[#list + 1] = { name = 'H', value = shape[3] }
    list[#list + 1] = { name = 'W', value = shape[4] }
  end
  list[#list + 1] = { name = 'SIZE', value = size }
  return list, size
end

local function fill(template, env)
  return cosmo.fill(sys.read_file(root .. '/templates/' .. template), env)
end

local function shape_text(shape) return table.concat(shape, 'x') end

-- A tensor's shape across the program's batch (ir.lua's Graph:batched_shape, for a lowered program).
local function batched_shape(program, t)
  local s = {}
  for i, d in ipairs(t.shape) do s[i] = d end
  if not (t.producer and t.producer.op == 'constant') then s[1] = s[1] * program.batch end
  return s
end

-- A generator parameter's value for the JSON: integers and booleans typed, the rest as written.
local function param_value(v)
  if v == 'true' or v == 'false' then return v == 'true' end
  return v:match('^%-?%d+$') and tonumber(v) or v
end

-- "k=v" parameters (in their order) as a JSON object in the same order, values typed.
local function json_params(plist)
  local params, keys = {}, {}
  for n, kv in ipairs(plist) do
    local k, v = kv:match('^([^=]*)=(.*)$')
    keys[n], params[k] = k, param_value(v)
  end
  return setmetatable(params, { __jsonorder = keys, __jsontype = 'object' })
end

-- What each step runs (see the top comment), from the facts the lowering set on it (its node,
-- algorithm and algorithm_reason) and the kernel compiled for it: { json = the JSON layer, label =
-- op and algorithm, comment = lines for the glue }. info: emit.bundle's.
local function describe_runs(program, info)
  local by_fn = {}
  for _, k in ipairs(info.kernels) do by_fn[k.fn] = k end
  -- the steps carry the schedule records of the first architecture (backend.build compiles it last)
  local archs, kernel_targets = targets.parse(info.target), {}
  for _, T in ipairs(archs) do
    if T.cpu then kernel_targets[#kernel_targets + 1] = T:kernel_target() end
    if T.gpu then kernel_targets[#kernel_targets + 1] = T:gpu_kernel_target() end
  end
  local file = lower.schedules_file(archs[1])
  local runs = {}
  for i, s in ipairs(program.steps) do
    local node = s.node
    local inputs = {}
    for n, t in ipairs(node.inputs) do inputs[n] = batched_shape(program, t) end
    local output = batched_shape(program, node.outputs[1])
    local input_text = {}
    for n, shape in ipairs(inputs) do input_text[n] = shape_text(shape) end
    local layer = { name = s.name, op = node.op, algorithm = s.algorithm, algorithm_reason = s.algorithm_reason,
      inputs = inputs, output = output, macs = s.macs, bytes = s.bytes }
    local head = string.format('layer %d %s: %s %s', i - 1, s.name, node.op, s.algorithm)
    local io = ' on ' .. table.concat(input_text, ' + ') .. ' -> ' .. shape_text(output) .. string.format(', %.0f MACs', s.macs)
    local why = 'why: ' .. s.algorithm_reason
    local lines
    if s.kind == 'kernel' then
      local plist = by_fn[s.fn or s.fn_gpu].params
      layer.generator, layer.kernel, layer.target = s.generator, s.fn, table.concat(kernel_targets, ',')
      -- a GPU bundle: the GPU kernel, and where it runs in a GPU context
      layer.gpu_kernel = s.fn_gpu
      if s.fn_gpu then
        layer.gpu = s.on_gpu and 'device' or s.offset_view and 'host (a view at an offset into its buffer: not on the device yet)'
          or 'host (the generator has no GPU schedule)'
      end
      layer.params = json_params(plist)
      -- the record kernels.compile applied (step.record: its signature and the CPU its file was tuned
      -- on; the file is the nearest records, schedules.path). Whether that CPU is the building
      -- machine's is the build report's, not the bundle's: a bundle is the same built anywhere.
      local sched = 'default'
      layer.schedule = 'default'
      if s.record then
        layer.schedule = setmetatable({ params = json_params(schedules.param_list(schedules.parse_params(s.schedule))),
          file = file or 'none', record = s.record.signature, cpu = s.record.cpu },
          { __jsonorder = { 'params', 'file', 'record', 'cpu' } })
        sched = 'record ' .. s.schedule .. ' (' .. (file or 'none') .. (s.record.cpu and ', tuned on ' .. s.record.cpu or '') .. ')'
      end
      -- a convolution's geometry: channels, kernel and stride
      local a, shape = node.attrs, ''
      if a.cin and a.cout and a.kernel then
        shape = string.format(' %d->%d %dx%d s%d', a.cin, a.cout, a.kernel[1], a.kernel[2], a.stride[1])
          .. (a.stride[2] ~= a.stride[1] and ('x' .. a.stride[2]) or '')
      end
      lines = {
        head .. shape .. io,
        why,
        'generator ' .. s.generator .. ' ' .. table.concat(plist, ' '),
        'schedule: ' .. sched,
      }
      if s.fn_gpu then lines[#lines + 1] = 'on the GPU: ' .. layer.gpu end
    else
      lines = { head .. ' in the glue' .. io, why }
    end
    for n, line in ipairs(lines) do lines[n] = c_text(line) end
    runs[i] = { json = setmetatable(layer, { __jsonorder = { 'name', 'op', 'algorithm', 'algorithm_reason', 'generator',
        'params', 'schedule', 'inputs', 'output', 'macs', 'bytes', 'target', 'kernel', 'gpu_kernel', 'gpu' } }),
      label = c_text(node.op .. ' ' .. s.algorithm), comment = table.concat(lines, '\n     * ') }
  end
  return runs
end

-- The device allocations of a GPU bundle (gpu: the target's T.gpu): one per activation buffer and
-- per weights tensor, so that every view is its allocation or a crop of it (an OpenCL kernel given
-- a crop at an offset makes a sub-buffer on every call). bases: the list ({ storage, offset, bytes
-- }), index: a function from an act or a weight to its base's C index.
local function device_bases()
  local bases, by = {}, {}
  local function index(storage, thing, offset, bytes)
    if not by[thing] then
      bases[#bases + 1] = { storage = storage, offset = offset, bytes = bytes }
      by[thing] = #bases - 1
    end
    return by[thing]
  end
  return bases, function(arg)
    if arg.storage == 'arena' then return index(0, arg.act, arg.act.offset, arg.act.bytes) end
    return index(1, arg.weight, arg.weight.offset, arg.weight.bytes)
  end
end

-- Views (Halide buffers) of every kernel argument, and each step's C code. With a GPU (gpu: the
-- target's T.gpu, cpu: whether the bundle has CPU kernels too) a step runs its GPU kernel when the
-- context is on the GPU: straight on the device buffers when the generator has a GPU schedule
-- (step.on_gpu), else on the host copies of its activations, copied from and back to the device
-- around it; a glue step (a flatten's layout change) likewise.
local function describe_steps(program, runs, gpu, cpu, base_of)
  local views, steps = {}, {}
  for i, step in ipairs(program.steps) do
    local call
    local per_image = (step.images or 1) > 1
    -- an image-major step's move of an N-image buffer to image ctx->image (a one-image buffer stays)
    local function image_at(act, offset)
      return act.one_image and tostring(offset) or string.format('%d + (size_t)ctx->image * %d', offset, 4 * act.image)
    end
    if step.kind == 'kernel' then
      local refs, moves = { 'ctx' }, {}
      local first = #views
      for _, arg in ipairs(step.args) do
        local extents, strides = {}, {}
        for d, dim in ipairs(arg.dims) do extents[d], strides[d] = dim[1], dim[2] end
        local offset = arg.storage == 'arena' and (arg.act.offset + 4 * (arg.elem_offset or 0)) or arg.weight.offset
        local v = { storage = arg.storage == 'arena' and 0 or 1, offset = offset, rank = #arg.dims,
          extents = table.concat(extents, ', '), strides = table.concat(strides, ', '),
          what = c_text((arg.storage == 'arena' and 'activation' or arg.weight.key) .. ', ' .. (step.fn or step.fn_gpu)) }
        if gpu then
          v.base = base_of(arg)
          v.within = offset - (arg.storage == 'arena' and arg.act.offset or arg.weight.offset)
        end
        views[#views + 1] = v
        refs[#refs + 1] = '&b[' .. (#views - 1) .. ']'
        if per_image and arg.storage == 'arena' then
          moves[#moves + 1] = string.format('        b[%d].host = a + %d + (size_t)n * %d;\n', #views - 1, offset, 4 * arg.act.image)
        elseif step.image_major and arg.storage == 'arena' and not arg.act.one_image then
          moves[#moves + 1] = string.format('      b[%d].host = a + %s;\n', #views - 1, image_at(arg.act, offset))
        end
      end
      if step.image_major then
        call = string.format('{\n%s      return %s(%s);\n    }', table.concat(moves), step.fn, table.concat(refs, ', '))
      elseif per_image then
        call = string.format('{\n      int n, err;\n      for (n = 0; n < %d; n++) {\n%s        err = %s(%s);\n        if (err) return err;\n      }\n      return 0;\n    }',
          step.images, table.concat(moves), step.fn, table.concat(refs, ', '))
      elseif gpu then
        local range = string.format('%d, %d', first, #step.args)
        local g
        if step.on_gpu then
          g = string.format('device_views(ctx, %s);\n      return %s(%s);', range, step.fn_gpu, table.concat(refs, ', '))
        else
          g = string.format('int err = views_to_host(ctx, %s); /* %s: on the host copies */\n      if (!err) err = %s(%s);\n      return err ? err : views_to_device(ctx, %s);',
            range, step.generator, step.fn_gpu, table.concat(refs, ', '), range)
        end
        call = cpu and string.format('if (ctx->device == FOLDC_DEVICE_GPU) {\n      %s\n    }\n    return %s(%s);', g, step.fn, table.concat(refs, ', '))
          or string.format('{\n      %s\n    }', g)
      else
        call = 'return ' .. step.fn .. '(' .. table.concat(refs, ', ') .. ');'
      end
    elseif step.image_major then
      call = string.format('foldc_hwc_to_nchw((const float *)(a + %s), (float *)(a + %s), %d, %d, %d);\n    return 0;',
        image_at(step.src, step.src.offset), image_at(step.dst, step.dst.offset), step.c, step.h, step.w)
    elseif per_image then
      call = string.format('{\n      int n;\n      for (n = 0; n < %d; n++)\n        foldc_hwc_to_nchw((const float *)(a + %d) + (size_t)n * %d, (float *)(a + %d) + (size_t)n * %d, %d, %d, %d);\n      return 0;\n    }',
        step.images, step.src.offset, step.src.image, step.dst.offset, step.dst.image, step.c, step.h, step.w)
    elseif gpu then
      local src, dst = base_of({ storage = 'arena', act = step.src }), base_of({ storage = 'arena', act = step.dst })
      call = string.format('{\n      int err = ctx->device == FOLDC_DEVICE_GPU ? base_to_host(ctx, %d) : 0;\n      if (err) return err;\n      foldc_hwc_to_nchw((const float *)(a + %d), (float *)(a + %d), %d, %d, %d);\n      return ctx->device == FOLDC_DEVICE_GPU ? base_to_device(ctx, %d) : 0;\n    }',
        src, step.src.offset, step.dst.offset, step.c, step.h, step.w, dst)
    else
      call = string.format('foldc_hwc_to_nchw((const float *)(a + %d), (float *)(a + %d), %d, %d, %d);\n    return 0;',
        step.src.offset, step.dst.offset, step.c, step.h, step.w)
    end
    steps[i] = { index = i - 1, name = c_text(step.name), call = call, macs = string.format('%.0f', step.macs),
      bytes = string.format('%.0f', step.bytes), label = runs[i].label, comment = runs[i].comment }
  end
  return views, steps
end

-- The input's copy into the arena or the output's out of it; io_shape is batched (N images).
local function copy_code(direction, io_shape, offset)
  local s = io_shape
  if #s == 4 and s[3] * s[4] > 1 and s[1] > 1 then
    local k = s[2] * s[3] * s[4]
    if direction == 'in' then
      return string.format('{\n    int n;\n    for (n = 0; n < %d; n++)\n      foldc_nchw_to_hwc(input + (size_t)n * %d, (float *)(ctx->arena + %d) + (size_t)n * %d, %d, %d, %d);\n  }',
        s[1], k, offset, k, s[2], s[3], s[4])
    end
    return string.format('{\n    int n;\n    for (n = 0; n < %d; n++)\n      foldc_hwc_to_nchw((const float *)(ctx->arena + %d) + (size_t)n * %d, output + (size_t)n * %d, %d, %d, %d);\n  }',
      s[1], offset, k, k, s[2], s[3], s[4])
  elseif #s == 4 and s[3] * s[4] > 1 then
    if direction == 'in' then
      return string.format('foldc_nchw_to_hwc(input, (float *)(ctx->arena + %d), %d, %d, %d);', offset, s[2], s[3], s[4])
    end
    return string.format('foldc_hwc_to_nchw((const float *)(ctx->arena + %d), output, %d, %d, %d);', offset, s[2], s[3], s[4])
  end
  local n = 1
  for _, d in ipairs(s) do n = n * d end
  if direction == 'in' then
    return string.format('memcpy(ctx->arena + %d, input, %d);', offset, 4 * n)
  end
  return string.format('memcpy(output, ctx->arena + %d, %d);', offset, 4 * n)
end

-- After the input's copy: the image-major layers (lower.lua), image by image; their profile
-- times add up over the images.
local function image_major_loop(program)
  local k = program.image_major
  if k == 0 then return '' end
  return string.format([[

  for (ctx->image = 0; ctx->image < %d; ctx->image++) {
    for (i = 0; i < %d; i++) {
      double t0 = seconds ? foldc_now() : 0.0;
      err = run_layer(ctx, i);
      if (err) {
        if (!ctx->error[0]) strncpy(ctx->error, layer_names[i], sizeof ctx->error - 1);
        return FOLDC_ERR_KERNEL;
      }
      if (seconds) seconds[i] = (ctx->image ? seconds[i] : 0.0) + foldc_now() - t0;
    }
  }]], program.batch, k)
end

-- Write every bundle file into dir. info: { target, arena, bound, weights_total, kernels, runtime,
-- source, with_weights }.
function emit.bundle(program, dir, info)
  local m = emit.c_name(program.name)
  local runs = describe_runs(program, info)
  -- a GPU bundle (one architecture: backend.build): its GPU, and whether it has CPU kernels too
  local T = targets.parse(info.target)[1]
  local bases, base_of
  if T.gpu then bases, base_of = device_bases() end
  local views, steps = describe_steps(program, runs, T.gpu, T.cpu, base_of)
  local gpu, api = {}, T.gpu and require('targets.gpu').apis[T.gpu.api]
  local input_to_device, output_to_host = '', ''
  if T.gpu then
    local function act_base(act) return base_of({ storage = 'arena', act = act }) end
    input_to_device = string.format('\n  if (ctx->device == FOLDC_DEVICE_GPU && base_to_device(ctx, %d)) return FOLDC_ERR_KERNEL;',
      act_base(program.input.act))
    output_to_host = string.format('\n  if (ctx->device == FOLDC_DEVICE_GPU && base_to_host(ctx, %d)) return FOLDC_ERR_KERNEL;',
      act_base(program.output.act))
    local vb, vw = {}, {}
    for i, v in ipairs(views) do vb[i], vw[i] = tostring(v.base), v.within .. 'u' end
    local libs = {}
    for i, l in ipairs(api.libraries) do libs[i] = '"' .. l .. '"' end
    -- the helpers of the two kinds of step, where there is one of the kind (no unused functions)
    local on_device, on_host = {}, {}
    for _, st in ipairs(program.steps) do
      if st.kind == 'kernel' then
        if st.on_gpu then on_device[1] = {} else on_host[1] = {} end
      end
    end
    gpu[1] = { header = api.header, get_symbol = api.get_symbol, interface = api.interface,
      on_device = on_device, on_host = on_host,
      libs = table.concat(libs, ', '), num_bases = #bases, bases = bases,
      view_bases = table.concat(vb, ', '), view_within = table.concat(vw, ', ') }
  end
  local offsets, sizes = {}, {}
  for i, w in ipairs(program.weights) do offsets[i], sizes[i] = w.offset .. 'u', w.bytes .. 'u' end
  -- model id: everything the glue bakes in about the weights and kernels
  local id_parts = { table.concat(program.input.shape, 'x'), table.concat(program.output.shape, 'x') }
  for _, s in ipairs(steps) do id_parts[#id_parts + 1] = s.call end
  for _, v in ipairs(views) do id_parts[#id_parts + 1] = v.storage .. ':' .. v.offset .. ':' .. v.extents .. ':' .. v.strides end
  for i = 1, #offsets do id_parts[#id_parts + 1] = offsets[i] .. ':' .. sizes[i] end
  local model_id = hash.string(table.concat(id_parts, '|'))
  local headers, header_deps = {}, {}
  for i, k in ipairs(info.kernels) do headers[i] = k.fn; header_deps[i] = 'kernels/' .. k.fn .. '.h' end
  table.sort(headers)
  table.sort(header_deps)
  local in_macros, in_size = shape_macros(program.input.shape)
  local out_macros, out_size = shape_macros(program.output.shape)
  local macs = 0
  for _, s in ipairs(program.steps) do macs = macs + s.macs end
  local env = {
    m = m, M = m:upper(), version = emit.VERSION, target = info.target, source = c_text(info.source),
    input_macros = in_macros, output_macros = out_macros,
    arena_bytes = info.arena, arena_bound = info.bound, weights_bytes = info.weights_total,
    num_layers = #program.steps, macs = string.format('%.0f', macs),
    macs_human = string.format('%.3f G', macs / 1e9),
    kernel_headers = headers, kernel_header_deps = table.concat(header_deps, ' ') .. (api and ' foldc_gpu_driver.h ' .. api.header or ''),
    model_id = '0x' .. hash.hex(model_id), num_weights = #program.weights, num_views = #views,
    weight_offsets = table.concat(offsets, ', '), weight_sizes = table.concat(sizes, ', '),
    views = views, layers = steps, steps = steps,
    input_copy = copy_code('in', program.input.shape, program.input.act.offset) .. image_major_loop(program),
    layer_major_from = program.image_major,
    ctx_fields = program.batch > 1 and '\n  int image; /* the image the image-major layers run on (run_layers) */' or '',
    output_copy = copy_code('out', program.output.shape, program.output.act.offset),
    gpu = gpu, input_to_device = input_to_device, output_to_host = output_to_host,
    -- the bundle README's paragraph on devices: only where there is a GPU
    device_note = api and string.format([[

Devices: this bundle has %s kernels. `%s_create_on(weights, bytes, FOLDC_DEVICE_GPU, threads, &ctx)`
copies the weights to the GPU once; every activation stays there for the whole run, and `%s_run`
copies the input in and the output out (host pointers, as on the CPU). %s `%s_create` and
`%s_create_threads` take `%s_DEFAULT_DEVICE`; `./%s_main --device cpu|gpu` picks one. The %s driver
is loaded when the first GPU context is created (%s; `foldc_gpu_driver.h`): nothing about the GPU is
needed to build. Without it, without a usable device, or short of device memory, create returns an
error code (`FOLDC_ERR_GPU_DRIVER`, `_DEVICE`, `_MEMORY`) and nothing aborts. `%s.json` says per
layer where its kernel runs in a GPU context (`"gpu"`).
]], T.cpu and ('CPU and ' .. api.name) or ('only ' .. api.name), m, m,
        T.cpu and '`FOLDC_DEVICE_CPU` runs the CPU kernels in the same process (a fallback: create again).' or 'It has no CPU kernels.',
        m, m, m:upper(), m, api.name, table.concat(api.libraries, ', then '), m) or '',
    has_cpu = T.cpu and 1 or 0, has_gpu = T.gpu and 1 or 0,
    default_device = T.cpu and not T.gpu and 'FOLDC_DEVICE_CPU' or 'FOLDC_DEVICE_GPU',
    gpu_name = api and api.name or 'GPU', gpu_api_note = api and (': ' .. api.name) or '',
    libs_text = api and table.concat(api.libraries, ', then ') or 'the driver library',
    target_words = c_text(T.gpu and (T.cpu and 'the CPU and ' or 'only the ') .. (api.name .. ' GPUs') or 'the CPU only'),
    output_shape = table.concat(program.output.shape, ', '),
    input_shape = table.concat(program.input.shape, 'x'), output_shape_x = table.concat(program.output.shape, 'x'),
    input_size = in_size, output_size = out_size, batch = program.batch,
    -- the example program's top-5: of the first image
    top_size = program.batch > 1 and string.format('(%s_OUTPUT_SIZE / %d)', m:upper(), program.batch) or m:upper() .. '_OUTPUT_SIZE',
    top_label = program.batch > 1 and 'top-5 of image 0:' or 'top-5:',
    weights_note = info.with_weights and '' or ' (not included: build with --weights)',
  }
  -- the GPU helpers and the layer calls, templates of their own (model.c with them would pass the
  -- 200 locals Lua allows a function when cosmo compiles it, as it does on a second fill in one
  -- process)
  env.gpu_helpers = T.gpu and '\n' .. fill('model_gpu.c', setmetatable(gpu[1], { __index = env })) or ''
  env.run_functions = fill('model_run.c', env)
  sys.write_file(dir .. '/' .. m .. '.h', fill('model.h', env))
  sys.write_file(dir .. '/' .. m .. '.c', fill('model.c', env))
  sys.write_file(dir .. '/main.c', fill('main.c', env))
  sys.write_file(dir .. '/Makefile', fill('Makefile', env))
  sys.write_file(dir .. '/CMakeLists.txt', fill('CMakeLists.txt', env))
  env.output_shape = env.output_shape_x
  sys.write_file(dir .. '/README.md', fill('README.md', env))
  sys.write_file(dir .. '/foldc_runtime.h', sys.read_file(root .. '/runtime/foldc_runtime.h'))
  sys.write_file(dir .. '/foldc_pool.h', sys.read_file(root .. '/runtime/foldc_pool.h'))
  sys.write_file(dir .. '/HalideRuntime.h', sys.read_file(HALIDE_RUNTIME_H))
  if api then
    -- GPU bundles only: the driver loader and the GPU runtime's header
    sys.write_file(dir .. '/foldc_gpu_driver.h', sys.read_file(root .. '/runtime/foldc_gpu_driver.h'))
    sys.write_file(dir .. '/' .. api.header, sys.read_file(HALIDE_RUNTIME_H:gsub('[^/]*$', '') .. api.header))
  end
  sys.mkdir_p(dir .. '/kernels')
  for _, k in ipairs(info.kernels) do
    -- Halide names the include guard after the output path; make it depend on the kernel only
    local header = sys.read_file(k.header):gsub('HALIDE_[%w_]*_h', 'HALIDE_' .. k.fn .. '_h')
    sys.write_file(dir .. '/kernels/' .. k.fn .. '.h', header)
  end
  -- the kernel library lib<m>_kernels.a, or one per architecture (info.libraries: { machine,
  -- runtime, kernels }) named lib<m>_kernels-<machine>.a, which the Makefile and CMakeLists.txt
  -- pick by the compiler's target
  for _, lib in ipairs(info.libraries or { { runtime = info.runtime, kernels = info.kernels } }) do
    local objects = { lib.runtime.object }
    for _, k in ipairs(lib.kernels) do objects[#objects + 1] = k.object end
    -- by file name (the archive member name), not by cache path: the order must not depend on the
    -- generator sources' digest, so the archive stays byte-identical when unrelated generators change
    table.sort(objects, function(a, b) return a:match('[^/]*$') < b:match('[^/]*$') end)
    local ar = { 'ar', 'rcsD', dir .. '/lib' .. m .. '_kernels' .. (lib.machine and '-' .. lib.machine or '') .. '.a' }
    for _, o in ipairs(objects) do ar[#ar + 1] = o end
    sys.run_quiet(ar, 'archiving the kernels')
  end
  -- the JSON report: the same facts for tools
  local layers, weights = {}, {}
  for i, r in ipairs(runs) do layers[i] = r.json end
  for i, w in ipairs(program.weights) do
    weights[i] = { key = w.key, offset = w.offset, bytes = w.bytes, shape = w.tensor.shape }
  end
  local report = { model = m, foldc = emit.VERSION, target = info.target, source = info.source,
    input = program.input.shape, output = program.output.shape, arena_bytes = info.arena,
    arena_lower_bound = info.bound, weights_bytes = info.weights_total, macs = macs,
    layers = layers, weights = weights }
  local keyorder = { 'model', 'foldc', 'target', 'source', 'input', 'output', 'arena_bytes',
    'arena_lower_bound', 'weights_bytes', 'macs', 'layers', 'weights', 'name', 'op', 'kernel', 'key',
    'offset', 'bytes', 'shape' }
  sys.write_file(dir .. '/' .. m .. '.json', dkjson.encode(report, { indent = true, keyorder = keyorder }) .. '\n')
  if info.with_weights then
    emit.write_weights(dir .. '/' .. m .. '.weights', program.weights, info.weights_total, model_id)
  end
  return m
end

return emit
