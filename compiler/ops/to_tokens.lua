-- to_tokens: [1, C, H, W] -> [1, H*W, C], y[0, h*W + w, c] = x[0, c, h, w]
-- (einops 'b c h w -> b (h w) c', or x.flatten(2).transpose(1, 2)). Channels-innermost storage is
-- already token-major, so the backend aliases the buffer: no step, no copy.
local ops = require 'ops'
local tensor = require 'tensor'

local to_tokens = {}

function to_tokens.shape(_, shapes)
  local x = shapes[1]
  ops.expect_rank(x, { [4] = true }, 'tokens')
  return { x[1], x[3] * x[4], x[2] }
end

function to_tokens.macs() return 0 end

function to_tokens.eval(_, inputs)
  local x = inputs[1]
  local _, c, h, w = unpack(x.shape)
  local y = tensor.new({ 1, h * w, c })
  for ch = 0, c - 1 do
    for p = 0, h * w - 1 do y.data[p * c + ch] = x.data[ch * h * w + p] end
  end
  return y
end

function to_tokens.lower(node, L)
  L:alias_view(node.outputs[1], node.inputs[1], 0)
  return nil
end

return to_tokens
