-- act: y = f(x) element-wise for one activation f of compiler/activations.lua (attrs.act: its name;
-- relu, relu6, silu, hardswish, hardsigmoid, sigmoid, gelu, gelu_tanh, ...). passes/fuse_epilogue.lua
-- moves it into the kernel producing x; this op runs it where no producer takes it (the eltwise
-- kernel, halide/eltwise.cpp op=act).
local tensor = require 'tensor'
local lower = require 'lower'
local activations = require 'activations'

local act = {}

function act.shape(node, shapes)
  activations.get(node.attrs.act)
  return shapes[1]
end

function act.macs() return 0 end

function act.eval(node, inputs)
  local x = inputs[1]
  local f = activations.get(node.attrs.act).f
  local y = tensor.new(x.shape)
  for i = 0, x.numel - 1 do y.data[i] = f(x.data[i]) end
  return y
end

-- Backend: the kernel and the argument views (see lower.lua).
function act.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  return 'eltwise', { n = tensor.numel(y.shape), op = 'act', act = activations.param(node.attrs.act) },
    { L:act(x, lower.flat_dims(x.shape)), L:act(y, lower.flat_dims(y.shape)) }
end

return act
