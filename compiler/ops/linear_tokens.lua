-- linear_tokens: a Linear over token rows with its epilogue fused (passes/fuse_linear_tokens.lua):
--   y[r, o] = act( b[o] + sum_i W[o, i] x[r, i] ) (+ res[r, o]),  act: attrs.act (compiler/activations.lua)
-- or none. The residual comes after the activation here (a transformer's fc2 + shortcut), unlike
-- the convs' residual, which the activation follows.
-- The kernel (compiler/halide/linear_tokens.cpp) is a cache-blocked GEMM for many rows.
local tensor = require 'tensor'
local lower = require 'lower'
local linear = require 'ops.linear'
local conv2d = require 'ops.conv2d'
local activations = require 'activations'

local linear_tokens = {}

function linear_tokens.shape(node, shapes)
  local out = linear.shape(node, shapes)
  if shapes[2] and table.concat(shapes[2], 'x') ~= table.concat(out, 'x') then
    error('residual shape ' .. table.concat(shapes[2], 'x') .. ' differs from output ' .. table.concat(out, 'x'), 0)
  end
  return out
end

linear_tokens.macs = linear.macs

-- linear.eval applies the activation; the residual follows it.
function linear_tokens.eval(node, inputs, params)
  local y = linear.eval(node, { inputs[1] }, params)
  local res = inputs[2] and inputs[2].data
  if res then
    for i = 0, y.numel - 1 do y.data[i] = y.data[i] + res[i] end
  end
  return y
end

-- Backend: the weights blocked by choice.w_block output channels (the lowering stage's,
-- lower.weight_block), [cout/wb][cin][wb] (halide/linear_tokens.cpp w_block; 3-D, so that a
-- prefetch's box is the panel's lines): a register tile's
-- weight panel is then a few contiguous runs instead of rows cout*4 bytes apart (a page each at
-- 1024+ channels).
function linear_tokens.lower(node, L, choice)
  local x, y = node.inputs[1], node.outputs[1]
  local cin, cout = node.attrs.cin, node.attrs.cout
  local wb = choice.w_block
  -- a [cout, cin] weight is a [cout, cin, 1, 1] kernel: the convs' packing, 2-D dims
  local packed = conv2d.pack_weight(L.params[node.params.weight], cout, cin, 1, 1, wb)
  local wdims = wb > 0 and { { wb, 1 }, { cin, wb }, { cout / wb, cin * wb } } or { { cout, 1 }, { cin, cout }, { 1, cin * cout } }
  local args = { L:act(x, lower.act_dims(x.shape)), L:weight(node.params.weight .. '@t' .. (wb > 0 and wb or ''), packed, wdims),
                 L:bias(node, cout) }
  if node.inputs[2] then args[#args + 1] = L:act(node.inputs[2], lower.act_dims(y.shape)) end
  args[#args + 1] = L:act(y, lower.act_dims(y.shape))
  return 'linear_tokens', { cin = cin, cout = cout, rows = tensor.numel(x.shape) / cin,
                            act = activations.param(node.attrs.act), residual = node.inputs[2] ~= nil,
                            w_block = wb > 0 and wb or nil }, args
end

return linear_tokens
