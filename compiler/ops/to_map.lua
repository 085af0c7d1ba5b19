-- to_map: [1, h*w, C] -> [1, C, h, w], y[0, c, i, j] = x[0, i*w + j, c]
-- (einops 'b (h w) c -> b c h w'). The inverse of to_tokens; an alias in the backend.
local ops = require 'ops'
local tensor = require 'tensor'

local to_map = {}

function to_map.shape(node, shapes)
  local x, h, w = shapes[1], node.attrs.h, node.attrs.w
  ops.expect_rank(x, { [3] = true }, 'token_map')
  if h * w ~= x[2] then
    error(string.format('%d tokens do not form a %dx%d grid (input %s)', x[2], h, w, table.concat(x, 'x')), 0)
  end
  return { x[1], x[3], h, w }
end

function to_map.macs() return 0 end

function to_map.eval(node, inputs)
  local x = inputs[1]
  local n, c = x.shape[2], x.shape[3]
  local y = tensor.new(node.outputs[1].shape)
  for p = 0, n - 1 do
    for ch = 0, c - 1 do y.data[ch * n + p] = x.data[p * c + ch] end
  end
  return y
end

function to_map.lower(node, L)
  L:alias_view(node.outputs[1], node.inputs[1], 0)
  return nil
end

return to_map
