-- The activations foldc knows: the single definition of each. Every kernel that produces a tensor
-- (conv2d, conv2d_proj, Winograd, linear, linear_tokens, pool2d, add) takes one as its epilogue,
-- attrs.act (nil: none), applied to the value it would otherwise store (after a residual add; the
-- token GEMM adds its residual after the activation, ops/linear_tokens.lua); ops/act.lua runs one
-- alone where no producer takes it. The kernels' expressions are in compiler/halide/activation.h,
-- one case per name; the nn DSL's modules and functionals are made from this table (compiler/nn.lua).
--
-- An entry:
--   name        the value of the kernels' `act` generator parameter and of attrs.act
--   module      the torch.nn module (nn.<module>() in a description); options: the module's keyword
--               arguments that select this entry (GELU(approximate='tanh')), the first entry of a
--               module being its default
--   functional  the torch.nn.functional name (nn.<functional>(x) in a description)
--   f           the reference (double precision, PyTorch's formula for NaN and +-inf: NaN gives NaN,
--               -inf * 0 in SiLU/Hardswish/GELU gives NaN as torch does)
--   maps_zero   f(0) == 0: a zero border (padding) stays zero through it
--   paper       where it comes from
-- Adding an activation (Hardsigmoid's commit is the example): its entry here, its case in
-- halide/activation.h, its C reference in tests/kernels/kernel_test.c and kernel cases in
-- tests/kernels/cases_fast.txt, its PyTorch values in tests/unit/activations_spec.lua, its row in
-- models/README.md. The DSL, the interpreter, fusion and every producing kernel follow.
local ffi = require 'ffi'

pcall(ffi.cdef, 'double erf(double);')
local erf = ffi.C.erf
local exp, tanh, sqrt = math.exp, math.tanh, math.sqrt

local function relu6(v) return v < 0 and 0 or (v > 6 and 6 or v) end -- NaN: neither test holds
local function sigmoid(v) return 1 / (1 + exp(-v)) end

local activations = {}

activations.list = {
  { name = 'relu', module = 'ReLU', functional = 'relu', maps_zero = true,
    f = function(v) return v < 0 and 0 or v end,
    paper = 'Nair & Hinton 2010' },
  { name = 'relu6', module = 'ReLU6', functional = 'relu6', maps_zero = true,
    f = relu6,
    paper = 'Krizhevsky 2010; MobileNetV2 (Sandler et al. 2018)' },
  { name = 'silu', module = 'SiLU', functional = 'silu', maps_zero = true,
    f = function(v) return v / (1 + exp(-v)) end,
    paper = 'Elfwing et al. 2018 (Swish: Ramachandran et al. 2017); EfficientNet' },
  { name = 'hardswish', module = 'Hardswish', functional = 'hardswish', maps_zero = true,
    f = function(v) return v * relu6(v + 3) / 6 end,
    paper = 'MobileNetV3 (Howard et al. 2019)' },
  { name = 'hardsigmoid', module = 'Hardsigmoid', functional = 'hardsigmoid', maps_zero = false,
    f = function(v) return relu6(v + 3) / 6 end,
    paper = 'MobileNetV3 (Howard et al. 2019), its squeeze-excitation gate' },
  { name = 'sigmoid', module = 'Sigmoid', functional = 'sigmoid', maps_zero = false,
    f = sigmoid,
    paper = 'the logistic function; squeeze-excitation gates (Hu et al. 2018)' },
  { name = 'gelu', module = 'GELU', functional = 'gelu', options = { approximate = 'none' }, maps_zero = true,
    f = function(v) return 0.5 * v * (1 + erf(v / sqrt(2))) end,
    paper = 'Hendrycks & Gimpel 2016 (exact, erf)' },
  { name = 'gelu_tanh', module = 'GELU', functional = 'gelu', options = { approximate = 'tanh' }, maps_zero = true,
    f = function(v) return 0.5 * v * (1 + tanh(sqrt(2 / math.pi) * (v + 0.044715 * v * v * v))) end,
    paper = 'Hendrycks & Gimpel 2016 (tanh approximation)' },
  { name = 'tanh', module = 'Tanh', functional = 'tanh', maps_zero = true,
    f = tanh,
    paper = 'the hyperbolic tangent; MaxViT\'s pre-logits head (Tu et al. 2022)' },
}

activations.by_name = {}
for _, a in ipairs(activations.list) do activations.by_name[a.name] = a end

-- The entry of `name`; an unknown name is an error listing the known ones.
function activations.get(name)
  local a = activations.by_name[name]
  if not a then
    local names = {}
    for _, e in ipairs(activations.list) do names[#names + 1] = e.name end
    error('unknown activation ' .. tostring(name) .. ' (known: ' .. table.concat(names, ', ') .. ')', 0)
  end
  return a
end

-- v with attrs.act applied (v itself when there is none): the reference interpreter's epilogue.
function activations.apply(act, v)
  if not act then return v end
  return activations.get(act).f(v)
end

-- The kernels' generator parameter for attrs.act: 'none' when there is none, so that a kernel's
-- signature (schedules.signature) always names its activation.
function activations.param(act)
  return act and activations.get(act).name or 'none'
end

return activations
