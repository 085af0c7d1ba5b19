-- relu: y = max(x, 0), NaN for NaN (PyTorch). Fused into the producing conv/linear/pool/add by passes/fuse_epilogue.lua.
local tensor = require 'tensor'
local lower = require 'lower'

local relu = {}

function relu.shape(_, shapes) return shapes[1] end
function relu.macs() return 0 end

function relu.eval(_, inputs)
  local x = inputs[1]
  local y = tensor.new(x.shape)
  for i = 0, x.numel - 1 do
    local v = x.data[i]
    y.data[i] = v < 0 and 0 or v -- NaN stays NaN (torch.relu); `v > 0 and v or 0` gave 0
  end
  return y
end

-- Backend: the kernel and the argument views (see lower.lua).
function relu.lower(node, L)
  local x, y = node.inputs[1], node.outputs[1]
  local n = tensor.numel(y.shape)
  return 'eltwise', { n = n, op = 'relu' },
    { L:act(x, lower.flat_dims(x.shape)), L:act(y, lower.flat_dims(y.shape)) }
end

return relu
