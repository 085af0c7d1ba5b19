-- constant: a parameter used as a tensor (pos_embed, cls_token): y = P. No kernel: the backend
-- hands the weights blob's copy (in the activation layout of its shape) to the consumers.
local tensor = require 'tensor'

local constant = {}

function constant.shape(node) return node.attrs.shape end

function constant.macs() return 0 end

function constant.eval(node, _, params)
  return tensor.clone(params[node.params.value])
end

function constant.lower() return nil end

return constant
