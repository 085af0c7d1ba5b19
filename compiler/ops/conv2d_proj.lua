-- conv2d_proj: a convolution plus a 1x1 projection of a second input on the same output grid,
--   y[co,oy,ox] = act( conv2d(x; W, b)[co,oy,ox] + pb[co] + sum_cp PW[co,cp] * s[cp, oy*ps, ox*ps] )
-- (conv2d as in ops/conv2d.lua; PW [cout, pcin, 1, 1], stride ps, no padding). It is a ResNet
-- block's last conv added to its projection shortcut (He et al. 2016, "option B"), made by
-- passes/fuse_projection.lua so that the sum is formed in registers and written once, instead of
-- the shortcut's output being written and read back as a residual. Inputs: x, s. Params: weight,
-- bias, proj_weight, proj_bias. attrs: the conv's, plus proj = { cin, stride = {sy, sx} }.
local tensor = require 'tensor'
local lower = require 'lower'
local conv2d = require 'ops.conv2d'

local conv2d_proj = {}

-- The projection as a conv2d node of its own (for shape and reference semantics).
local function proj_node(node)
  local p = node.attrs.proj
  return {
    attrs = { cin = p.cin, cout = node.attrs.cout, kernel = { 1, 1 }, stride = p.stride, padding = { 0, 0 },
              dilation = { 1, 1 }, groups = 1 },
    params = { weight = node.params.proj_weight, bias = node.params.proj_bias },
    outputs = node.outputs,
  }
end

local function main_node(node)
  local attrs = {}
  for k, v in pairs(node.attrs) do attrs[k] = v end
  attrs.relu, attrs.proj = nil, nil
  return { attrs = attrs, params = { weight = node.params.weight, bias = node.params.bias }, outputs = node.outputs }
end

function conv2d_proj.shape(node, shapes)
  local y = conv2d.shape(main_node(node), { shapes[1] })
  local s = conv2d.shape(proj_node(node), { shapes[2] })
  if table.concat(s, 'x') ~= table.concat(y, 'x') then
    error('projection output ' .. table.concat(s, 'x') .. ' differs from the conv output ' .. table.concat(y, 'x'), 0)
  end
  return y
end

function conv2d_proj.macs(node)
  local o = node.outputs[1].shape
  return conv2d.macs(main_node(node)) + o[2] * o[3] * o[4] * node.attrs.proj.cin
end

function conv2d_proj.eval(node, inputs, params)
  local y = conv2d.eval(main_node(node), { inputs[1] }, params)
  local s = conv2d.eval(proj_node(node), { inputs[2] }, params)
  for i = 0, y.numel - 1 do
    local v = y.data[i] + s.data[i]
    if node.attrs.relu and v < 0 then v = 0 end
    y.data[i] = v
  end
  return y
end

-- Backend: the direct conv2d kernel with its projection input (halide/conv2d.cpp, proj_cin > 0),
-- both weights blocked as the lowering stage chose (choice.w_block). The two biases are added here,
-- in double, into one bias vector.
function conv2d_proj.lower(node, L, choice)
  local a, p = node.attrs, node.attrs.proj
  local x, s, y = node.inputs[1], node.inputs[2], node.outputs[1]
  local wb = choice.w_block
  local bias = tensor.new({ a.cout })
  local keys = {}
  for _, key in ipairs({ node.params.bias or false, node.params.proj_bias or false }) do
    if key then
      keys[#keys + 1] = key
      local b = L.params[key].data
      for co = 0, a.cout - 1 do bias.data[co] = bias.data[co] + b[co] end
    end
  end
  local bias_key = #keys > 0 and table.concat(keys, '+') or (node.params.weight .. '#zero_bias')
  local args = {
    L:act(x, lower.act_dims(x.shape)),
    conv2d.packed_weight(L, node.params.weight, a.cout, a.cin / a.groups, a.kernel[1], a.kernel[2], wb),
    L:weight(bias_key, bias, { { a.cout, 1 } }),
    L:act(s, lower.act_dims(s.shape)),
    conv2d.packed_weight(L, node.params.proj_weight, a.cout, p.cin, 1, 1, wb),
    L:act(y, lower.act_dims(y.shape)),
  }
  local gp = conv2d.gparams(a, x, y, wb)
  gp.residual = false
  gp.proj_cin, gp.proj_in_w, gp.proj_in_h = p.cin, s.shape[4], s.shape[3]
  -- the generator takes one stride (square projections: every ResNet shortcut)
  gp.proj_stride = p.stride[1]
  -- channel slices (lower.lua)
  gp.in_cs, gp.proj_cs, gp.out_cs = L:row_channels_of(x), L:row_channels_of(s), L:row_channels_of(y)
  return 'conv2d', gp, args
end

return conv2d_proj
