-- conv2d: y[co,oy,ox] = act( b[co] + sum_{ci,ky,kx} W[co,ci,ky,kx] * x[g*Cg+ci, oy*sy-py+ky*dy, ox*sx-px+kx*dx]
--                            (+ r[co,oy,ox]) ),  g = co / (Cout/groups), Cg = Cin/groups, zero padding.
-- (PyTorch Conv2d semantics.) The fused epilogue -- bias, residual input r (inputs[2]) and the
-- activation act (attrs.act, compiler/activations.lua; none when nil) --
-- is added by passes/fuse_epilogue.lua; the direct kernel writes over the residual when it is the
-- residual's last use (in_place). Lowered to the direct kernel (halide/conv2d.cpp) with the weight
-- blocking the lowering stage chose; where that stage chooses Winograd (lower.choose), winograd.lua
-- lowers the conv instead.
local ffi = require 'ffi'
local ops = require 'ops'
local tensor = require 'tensor'
local lower = require 'lower'
local activations = require 'activations'

local conv2d = {}

function conv2d.shape(node, shapes)
  local a = node.attrs
  local x = shapes[1]
  ops.expect_rank(x, { [4] = true }, 'conv2d')
  if x[2] ~= a.cin then
    error(string.format('expects %d input channels, got %d (input shape %s)', a.cin, x[2], table.concat(x, 'x')), 0)
  end
  local oh = ops.window_out(x[3], a.kernel[1], a.stride[1], a.padding[1], a.dilation[1], false)
  local ow = ops.window_out(x[4], a.kernel[2], a.stride[2], a.padding[2], a.dilation[2], false)
  if oh < 1 or ow < 1 then
    error(string.format('kernel %dx%d does not fit the %dx%d input', a.kernel[1], a.kernel[2], x[3], x[4]), 0)
  end
  local out = { x[1], a.cout, oh, ow }
  if shapes[2] and table.concat(shapes[2], 'x') ~= table.concat(out, 'x') then
    error('residual shape ' .. table.concat(shapes[2], 'x') .. ' differs from output ' .. table.concat(out, 'x'), 0)
  end
  return out
end

function conv2d.macs(node)
  local a, o = node.attrs, node.outputs[1].shape
  return o[2] * o[3] * o[4] * (a.cin / a.groups) * a.kernel[1] * a.kernel[2]
end

function conv2d.eval(node, inputs, params)
  local a = node.attrs
  local x = inputs[1]
  local W = params[node.params.weight].data
  local bias = node.params.bias and params[node.params.bias].data
  local _, cin, ih, iw = unpack(x.shape)
  local out_shape = node.outputs[1].shape
  local cout, oh, ow = out_shape[2], out_shape[3], out_shape[4]
  local kh, kw = a.kernel[1], a.kernel[2]
  local sy, sx, py, px, dy, dx = a.stride[1], a.stride[2], a.padding[1], a.padding[2], a.dilation[1], a.dilation[2]
  local cg, og = cin / a.groups, cout / a.groups
  local acc = ffi.new('double[?]', cout * oh * ow)
  local xd = x.data
  for co = 0, cout - 1 do
    local g = math.floor(co / og)
    local base = co * oh * ow
    for ci = 0, cg - 1 do
      local xc = (g * cg + ci) * ih * iw
      for ky = 0, kh - 1 do
        for kx = 0, kw - 1 do
          local wv = W[((co * cg + ci) * kh + ky) * kw + kx]
          -- output columns whose input column ox*sx - px + kx*dx lies inside [0, iw)
          local off = kx * dx - px
          local ox_lo = math.max(0, math.ceil(-off / sx))
          local ox_hi = math.min(ow - 1, math.floor((iw - 1 - off) / sx))
          for oy = 0, oh - 1 do
            local iy = oy * sy - py + ky * dy
            if iy >= 0 and iy < ih then
              local row, orow = xc + iy * iw + off, base + oy * ow
              for ox = ox_lo, ox_hi do
                acc[orow + ox] = acc[orow + ox] + wv * xd[row + ox * sx]
              end
            end
          end
        end
      end
    end
  end
  local y = tensor.new(out_shape)
  local res = inputs[2] and inputs[2].data
  for co = 0, cout - 1 do
    local b = bias and bias[co] or 0
    for i = co * oh * ow, (co + 1) * oh * ow - 1 do
      local v = acc[i] + b
      if res then v = v + res[i] end
      y.data[i] = activations.apply(a.act, v)
    end
  end
  return y
end

-- A [cout, cig, kh, kw] weight W (a tensor) in the kernels' memory order: HWIO, [kh][kw][cig][cout]
-- (wb = 0), or blocked by wb output channels (w_block, halide/conv2d.cpp; lower.weight_block),
-- [cout/wb][kh][kw][cig][wb]. Also the token Linears' layout (ops/linear_tokens.lua: kh = kw = 1).
function conv2d.pack_weight(W, cout, cig, kh, kw, wb)
  local packed = tensor.new({ kh, kw, cig, cout })
  for co = 0, cout - 1 do
    local base = wb > 0 and (math.floor(co / wb) * kh * kw * cig * wb + co % wb) or co
    local step = wb > 0 and wb or cout
    for ci = 0, cig - 1 do
      for ky = 0, kh - 1 do
        for kx = 0, kw - 1 do
          packed.data[base + ((ky * kw + kx) * cig + ci) * step] = W.data[((co * cig + ci) * kh + ky) * kw + kx]
        end
      end
    end
  end
  return packed
end

-- A [cout, cig, kh, kw] weight as the kernel reads it: a weights view named key@hwio (unblocked) or
-- key@hwio<wb>. W: the weight tensor when it is not L.params[key] itself (then key names it).
function conv2d.packed_weight(L, key, cout, cig, kh, kw, wb, W)
  local packed = conv2d.pack_weight(W or L.params[key], cout, cig, kh, kw, wb)
  local wdims = { { cout, 1 }, { cig, cout }, { kw, cout * cig }, { kh, cout * cig * kw } }
  if wb > 0 then wdims = { { wb, 1 }, { cig, wb }, { kw, wb * cig }, { kh * cout / wb, wb * cig * kw } } end
  return L:weight(key .. '@hwio' .. (wb > 0 and wb or ''), packed, wdims)
end

-- A grouped conv whose groups have fewer output channels than a vector has lanes reads its input
-- through gathers in the direct kernel (halide/conv2d.cpp), unless its groups have as many input as
-- output channels and whole groups fill every vector (ResNeXt-50 32x4d's stages 1 and 2: 4 and 8 of
-- AVX-512's 16; RegNet's group widths): those run natively ("narrow groups": one permute a FMA,
-- layer1's 3x3 1.07 -> 0.28 ms, layer2's 0.42 -> 0.28 ms). The others (a channel multiplier, e.g.
-- 8 -> 16 in 8 groups) run instead as a conv of fewer, wider groups ("super-groups" of lanes output
-- channels, each over the input channels of the groups it joins) whose weights are zero outside each
-- channel's own group (block diagonal): lanes / (cout / groups) times the MACs, at the dense
-- kernel's rate. Exact over the reals; an inf or NaN input channel spreads to the other channels of
-- its super-group (0 * inf). Returns the number of super-groups, or nil (the conv keeps its groups:
-- dense, depthwise, narrow, vector-wide groups, or groups that do not tile a vector).
function conv2d.super_groups(a, lanes)
  local opg = a.cout / a.groups
  if a.groups == 1 or (a.groups == a.cin and a.cin == a.cout) or opg % lanes == 0 or lanes % opg ~= 0 then return nil end
  if a.cin == a.cout and a.cout % lanes == 0 then return nil end -- narrow groups: the kernel's own path
  local join = lanes / opg
  if a.groups % join ~= 0 then return nil end
  return a.groups / join
end

-- W [cout, cin/groups, kh, kw] as the block-diagonal weight of the same conv in sg groups
-- [cout, cin/sg, kh, kw] (zero outside each output channel's own group).
function conv2d.widen_groups(W, a, sg)
  local cout, cpg, opg = a.cout, a.cin / a.groups, a.cout / a.groups
  local k = a.kernel[1] * a.kernel[2]
  local wide = a.cin / sg
  local out = tensor.new({ cout, wide, a.kernel[1], a.kernel[2] })
  for co = 0, cout - 1 do
    local at = (math.floor(co / opg) % (a.groups / sg)) * cpg -- the group's first channel in its super-group
    for i = 0, cpg * k - 1 do out.data[(co * wide + at) * k + i] = W.data[co * cpg * k + i] end
  end
  return out
end

-- The direct kernel's shape parameters (geometry from the attributes: RepMLP's partition FC keeps
-- its [O*h*w, C*h*w/g, 1, 1] weight, the same memory as the [O*h*w, C/g, h, w] kernel it runs as,
-- nn/repmlp.lua); x: the conv's input, y: its output.
function conv2d.gparams(a, x, y, wb)
  return {
    cin = a.cin, cout = a.cout, in_w = x.shape[4], in_h = x.shape[3], out_w = y.shape[4], out_h = y.shape[3],
    kw = a.kernel[2], kh = a.kernel[1], stride_x = a.stride[2], stride_y = a.stride[1],
    pad_x = a.padding[2], pad_y = a.padding[1], dil_x = a.dilation[2], dil_y = a.dilation[1],
    groups = a.groups, act = activations.param(a.act), w_block = wb > 0 and wb or nil,
  }
end

-- The direct kernel's generator parameters for a conv2d node, its weights blocked by wb output
-- channels (0: unblocked).
function conv2d.direct_params(node, wb)
  local gp = conv2d.gparams(node.attrs, node.inputs[1], node.outputs[1], wb)
  gp.residual = node.inputs[2] ~= nil
  return gp
end

-- Backend: the direct kernel and the argument views (see lower.lua); choice: the lowering stage's
-- (w_block).
-- Whether an output width leaves an in-place kernel (tiles that divide it) a pixel tile of 4 to
-- 16 pixels, or the whole row.
function conv2d.in_place_width(w)
  for d = 4, 16 do
    if w % d == 0 then return true end
  end
  return w <= 16
end

function conv2d.lower(node, L, choice)
  local a = node.attrs
  local x, y = node.inputs[1], node.outputs[1]
  local gp = conv2d.direct_params(node, choice.w_block)
  gp.in_cs, gp.out_cs = L:row_channels_of(x), L:row_channels_of(y) -- channel slices (lower.lua)
  local key, W = node.params.weight, nil
  if choice.super_groups then
    gp.groups = choice.super_groups
    key = key .. '@groups' .. gp.groups
    W = conv2d.widen_groups(L.params[node.params.weight], a, gp.groups)
  end
  local args = {
    L:act(x, lower.act_dims(x.shape)),
    conv2d.packed_weight(L, key, a.cout, a.cin / gp.groups, a.kernel[1], a.kernel[2], gp.w_block or 0, W),
    L:bias(node, a.cout),
  }
  local res = node.inputs[2]
  if res then
    args[#args + 1] = L:act(res, lower.act_dims(y.shape))
    -- the residual's last use, and not the conv's input: write the output over it (in_place), so
    -- the residual's lines are read and written once instead of a second buffer's being written;
    -- only where the kernel's pixel tiles, rounded to divisors of the output width, keep 4 to 16
    -- pixels (Xception's stride-2 shortcuts to 74 and 37 wide maps ran 2- and 1-pixel tiles)
    if res ~= x and gp.w_block and L:can_overwrite(res) and conv2d.in_place_width(y.shape[4]) then
      L:alias_view(y, res, 0)
      gp.in_place = true
    end
  end
  args[#args + 1] = L:act(y, lower.act_dims(y.shape))
  return 'conv2d', gp, args
end

return conv2d
