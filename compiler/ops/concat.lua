-- concat: y = torch.cat({x_1, ..., x_n}, 1) of feature maps [1, C_i, H, W]: y[c0_i + c] = x_i[c],
-- c0_i = C_1 + ... + C_(i-1) (DenseNet's dense connectivity, Huang et al., CVPR 2017; Inception's
-- branches). No step of its own: the lowering (lower.lua, place_concats) gives y one buffer and
-- every x_i its channel slice of it, which x_i's producer writes in place (a view with a channel
-- offset whose pixels are C = sum C_i floats apart); a concatenation whose inputs already lie side
-- by side in a larger one (DenseNet's growing prefix) is a view of that. An input that cannot be
-- written in place is copied into its slice.
local tensor = require 'tensor'

local concat = {}

function concat.shape(_, shapes)
  local first = shapes[1]
  if #first ~= 4 then error('expects rank 4 feature maps, got shape ' .. table.concat(first, 'x'), 0) end
  local c = 0
  for i, s in ipairs(shapes) do
    if #s ~= 4 or s[1] ~= first[1] or s[3] ~= first[3] or s[4] ~= first[4] then
      error(string.format('input %d has shape %s; every input must be %dxCx%dx%d', i, table.concat(s, 'x'),
        first[1], first[3], first[4]), 0)
    end
    c = c + s[2]
  end
  return { first[1], c, first[3], first[4] }
end

function concat.macs() return 0 end

function concat.eval(node, inputs)
  local y = tensor.new(node.outputs[1].shape)
  local at = 0
  for _, x in ipairs(inputs) do
    for i = 0, x.numel - 1 do y.data[at + i] = x.data[i] end
    at = at + x.numel
  end
  return y
end

-- Backend: no step; lower.lua's place_concats has made the inputs slices of the output's buffer.
function concat.lower() end

return concat
