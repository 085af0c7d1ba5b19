-- channel_gate: squeeze-and-excitation's gate (Hu et al., "Squeeze-and-Excitation Networks", CVPR
-- 2018): y[c, h, w] = act(x[c, h, w] * s[c] [+ r[c, h, w]]) for a map x [1, C, H, W] and an
-- excitation s [1, C, 1, 1] (or [1, C]) computed from x by the SE branch; the optional residual r
-- (inputs[3]) and act are taken by passes/fuse_epilogue.lua from the add and activation after it.
-- Kernel: halide/gate.cpp.
local tensor = require 'tensor'
local activations = require 'activations'

local channel_gate = {}

function channel_gate.shape(_, shapes)
  local x, s = shapes[1], shapes[2]
  if #x ~= 4 then error('expects a map [1, C, H, W], got ' .. table.concat(x, 'x'), 0) end
  local n = 1
  for i = 2, #s do n = n * s[i] end
  if not ((#s == 4 and s[3] == 1 and s[4] == 1) or #s == 2) or s[2] ~= x[2] or n ~= x[2] then
    error(string.format('the gate must be [1, %d, 1, 1], got %s', x[2], table.concat(s, 'x')), 0)
  end
  if shapes[3] and table.concat(shapes[3], 'x') ~= table.concat(x, 'x') then
    error('residual shape ' .. table.concat(shapes[3], 'x') .. ' differs from ' .. table.concat(x, 'x'), 0)
  end
  return x
end

function channel_gate.macs() return 0 end

function channel_gate.eval(node, inputs)
  local x, s, r = inputs[1], inputs[2], inputs[3]
  local c, inner = x.shape[2], x.shape[3] * x.shape[4]
  local y = tensor.new(x.shape)
  local act = node.attrs.act
  for i = 0, x.numel - 1 do
    local v = x.data[i] * s.data[math.floor(i / inner) % c]
    if r then v = v + r.data[i] end
    y.data[i] = activations.apply(act, v)
  end
  return y
end

function channel_gate.lower(node, L)
  local x, s, r, y = node.inputs[1], node.inputs[2], node.inputs[3], node.outputs[1]
  local c, p = x.shape[2], x.shape[3] * x.shape[4]
  local map = { { c, 1 }, { p, c } }
  local args = { L:act(x, map), L:act(s, { { c, 1 } }) }
  if r then args[#args + 1] = L:act(r, map) end
  args[#args + 1] = L:act(y, map)
  return 'gate', { c = c, p = p, residual = r ~= nil, act = activations.param(node.attrs.act) }, args
end

return channel_gate
