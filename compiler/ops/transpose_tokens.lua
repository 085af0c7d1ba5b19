-- transpose_tokens: [1, N, C] -> [1, C, N], y[0, c, n] = x[0, n, c] (x.transpose(1, 2): MLP-Mixer's
-- token-mixing MLP runs on this view; Tolstikhin et al. 2021, "MLP-Mixer: An all-MLP Architecture
-- for Vision"). No kernel: passes/fold_token_transpose.lua turns a Linear on this view into a
-- Linear over the token axis (ops/token_linear.lua) and cancels the transposes; one that is left
-- is refused at lowering (no copy kernel).
local ops = require 'ops'
local tensor = require 'tensor'
local ir = require 'ir'

local transpose_tokens = {}

function transpose_tokens.shape(_, shapes)
  local x = shapes[1]
  ops.expect_rank(x, { [3] = true }, 'transpose_tokens')
  return { x[1], x[3], x[2] }
end

function transpose_tokens.macs() return 0 end

function transpose_tokens.eval(_, inputs)
  local x = inputs[1]
  local n, c = x.shape[2], x.shape[3]
  local y = tensor.new({ 1, c, n })
  for r = 0, n - 1 do
    for ch = 0, c - 1 do y.data[ch * n + r] = x.data[r * c + ch] end
  end
  return y
end

function transpose_tokens.lower(node)
  error(string.format('%s: a transposed token view that no Linear over the tokens reads (only transpose -> Linear ... '
    .. 'Linear -> transpose runs without a copy; a transpose copy is not supported)', ir.node_name(node)), 0)
end

return transpose_tokens
