-- NaN through compiled bundles as PyTorch propagates it (torch.relu(NaN) = NaN, max_pool2d and the
-- max mixer give NaN when a window holds a NaN, padding never does; GELU, LayerNorm, softmax and
-- average pools carry it by arithmetic). For each fixture: an all-NaN input must give an all-NaN
-- output, and an input with one NaN pixel (a corner, next to the padding; the centre, a negative
-- NaN) must give NaN exactly where the reference interpreter does (tests/unit/nan_spec.lua holds the
-- interpreter to PyTorch's rules), and the other outputs within 1e-4 of it. A bundle with Winograd
-- layers may give NaN at more outputs (a NaN spreads over its tile through the transforms); only
-- missing NaNs fail there.
--   luajit tests/e2e/nan_propagation.lua DESCRIPTION:NAME...   (FOLDC_ROOT, FOLDC_GEN, FOLDC_CACHE set)
local root = os.getenv('FOLDC_ROOT') or '.'
package.path = root .. '/compiler/?.lua;' .. root .. '/compiler/?/init.lua;' .. root .. '/?.lua;' .. package.path
local ffi = require 'ffi'
local pipeline = require 'pipeline'
local backend = require 'backend'
local interpreter = require 'interpreter'
local tensor = require 'tensor'
local npy = require 'weights.npy'
local sys = require 'sys'

local failed = 0
local function check(cond, msg)
  if not cond then
    print('FAIL ' .. msg)
    failed = failed + 1
  end
  return cond
end

local function is_nan(v) return v ~= v end

for _, spec in ipairs(arg) do
  local desc, name = spec:match('^([^:]+):(.+)$')
  local model = root .. '/tests/fixtures/' .. desc .. '.lua:' .. name
  local weights = root .. '/tests/fixtures/data/' .. name .. '.safetensors'
  local deploy, _, graph = pipeline.deploy_graph(model, weights)
  local dir = sys.tmpdir('foldc-nan')
  local ok, err = pcall(function()
    local info = backend.build(deploy, dir .. '/bundle', { weights = true })
    sys.run_quiet({ 'make', '-s', '-C', info.dir }, 'compiling the bundle')
    local json = sys.read_file(info.dir .. '/' .. info.name .. '.json')
    local winograd = json:find('@winograd') ~= nil
    local function run(x)
      npy.write(dir .. '/in.npy', x)
      sys.run_quiet({ info.dir .. '/' .. info.name .. '_main', '--weights', info.dir .. '/' .. info.name .. '.weights',
        '--input', dir .. '/in.npy', '--output', dir .. '/out.npy' }, 'running ' .. info.name)
      return npy.read(dir .. '/out.npy')
    end
    local shape = graph.input.shape
    local inputs = {}
    local all = tensor.new(shape)
    for i = 0, all.numel - 1 do all.data[i] = 0 / 0 end
    inputs[#inputs + 1] = { 'all-NaN', all }
    local rng = tensor.rng(11)
    for _, where in ipairs({ 'corner', 'centre' }) do
      local x = tensor.random(shape, rng, 1)
      local i = where == 'corner' and 0 or math.floor(x.numel / 2) + math.floor(shape[#shape] / 2)
      ffi.cast('uint32_t *', x.data)[i] = where == 'corner' and 0x7fc00000 or 0xffc00000 -- +NaN / -NaN
      inputs[#inputs + 1] = { 'one NaN at the ' .. where, x }
    end
    for _, case in ipairs(inputs) do
      local what, x = case[1], case[2]
      local out = run(x)
      local ref = interpreter.run(graph, x)[1]
      local missing, extra, nref, maxdiff, maxref = 0, 0, 0, 0, 0
      for i = 0, ref.numel - 1 do
        local r, o = ref.data[i], out.data[i]
        if is_nan(r) then
          nref = nref + 1
          if not is_nan(o) then missing = missing + 1 end
        elseif is_nan(o) then
          extra = extra + 1
        else
          maxdiff = math.max(maxdiff, math.abs(o - r))
          maxref = math.max(maxref, math.abs(r))
        end
      end
      local rel = maxref > 0 and maxdiff / maxref or maxdiff
      local line = string.format('%s, %s: %d of %d outputs NaN in the reference, %d missing, %d extra%s; others rel %.2g',
        name, what, nref, ref.numel, missing, extra, winograd and ' (Winograd: extra allowed)' or '', rel)
      local good = check(missing == 0 and (extra == 0 or winograd) and rel <= 1e-4, line)
      if what == 'all-NaN' then good = check(nref == ref.numel, name .. ': the reference is not all NaN') and good end
      if good then print('ok   ' .. line) end
    end
  end)
  sys.rm_rf(dir)
  if not ok then error(err, 0) end
end
os.exit(failed == 0 and 0 or 1)
