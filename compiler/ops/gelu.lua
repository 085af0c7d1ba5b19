-- gelu: y = 0.5 x (1 + erf(x / sqrt(2))), the exact form (PyTorch nn.GELU(), approximate='none').
-- The reference uses the C library's erf in double precision; the kernel a float approximation
-- (|error| of erf < 2e-7). A producer may take it as its epilogue (passes/fuse_gelu.lua).
local ffi = require 'ffi'
local tensor = require 'tensor'
local lower = require 'lower'

pcall(ffi.cdef, 'double erf(double);')
local erf = ffi.C.erf
local RSQRT2 = 1 / math.sqrt(2)

local gelu = {}

function gelu.f(v) return 0.5 * v * (1 + erf(v * RSQRT2)) end

function gelu.shape(_, shapes) return shapes[1] end

function gelu.macs() return 0 end

function gelu.eval(_, inputs)
  local x = inputs[1]
  local y = tensor.new(x.shape)
  for i = 0, x.numel - 1 do y.data[i] = gelu.f(x.data[i]) end
  return y
end

function gelu.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  return 'gelu', { n = tensor.numel(x.shape) },
    { L:act(x, lower.flat_dims(x.shape)), L:act(y, lower.flat_dims(y.shape)) }
end

return gelu
