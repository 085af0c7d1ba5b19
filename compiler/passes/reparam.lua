-- Shared moves of the structural re-parameterisation folds (fold_repvgg, fold_acb, fold_dbb,
-- fold_dirac, fold_repmlp, fold_mobileone); not a pass itself. Ding et al. list them as the transforms of
-- "Diverse Branch Block" (CVPR 2021) and use them in RepVGG (CVPR 2021), ACNet (ICCV 2019) and
-- RepMLP (2021):
--   I   conv then BN  -> conv:   K'[o] = K[o]*s[o],  b'[o] = b[o]*s[o] + t[o]  (s, t: the BN affine)
--   II  branches on one input, summed -> one conv: K = sum K_i, b = sum b_i (same geometry)
--   III 1x1 conv (+b1) then kxk conv (+b2) -> one kxk conv, exact when the 1x1 output is padded with
--       b1 (what DBB's BNAndPadLayer does): K[o,i] = sum_m K2[o,m] * K1[m,i],
--       b[o] = b2[o] + sum_{m,y,x} K2[o,m,y,x] * b1[m]   (per group)
--   V   kxk average pooling -> conv with 1/(kh*kw) on each channel's own tap
--   VI  a smaller kernel -> kxk: zero-pad it so its centre sits on the kxk centre
--   and the identity as a conv: 1 at the centre tap of [c, c mod (C/groups)].
-- Kernels here are { shape = {cout, cin/groups, kh, kw}, data = double[] } and biases double[cout]:
-- the algebra runs in double and is rounded to float32 once, when stored.
--
-- Blocks are found by the node.block tag nn.mark_block puts on the nodes of a training-time block;
-- reparam.replace puts one conv2d in the block's place.
local ffi = require 'ffi'
local tensor = require 'tensor'
local batchnorm = require 'ops.batchnorm'

local reparam = {}

local function fail(block, msg)
  error(string.format('%s (%s block): %s', block.info.path ~= '' and block.info.path or '<root>', block.info.kind, msg), 0)
end
reparam.fail = fail

function reparam.zeros(cout, cig, kh, kw)
  local n = cout * cig * kh * kw
  return { shape = { cout, cig, kh, kw }, data = ffi.new('double[?]', n), numel = n }
end

function reparam.zero_bias(n)
  return ffi.new('double[?]', n)
end

-- A float32 weight tensor [cout, cin/groups, kh, kw] as a double kernel.
function reparam.kernel_of(w)
  local s = w.shape
  local k = reparam.zeros(s[1], s[2], s[3] or 1, s[4] or 1)
  for i = 0, k.numel - 1 do k.data[i] = w.data[i] end
  return k
end

-- Transform I: the BN node's affine applied to the conv output channels (new kernel and bias).
function reparam.fuse_bn(graph, bn, k, bias)
  local scale, shift = batchnorm.affine(bn, graph.params)
  local cout = k.shape[1]
  local per = k.numel / cout
  local out = reparam.zeros(unpack(k.shape))
  local b = reparam.zero_bias(cout)
  for o = 0, cout - 1 do
    for i = o * per, (o + 1) * per - 1 do out.data[i] = k.data[i] * scale[o] end
    b[o] = (bias and bias[o] or 0) * scale[o] + shift[o]
  end
  return out, b
end

-- Transform VI: k placed in a zero kh x kw kernel with its top-left tap at (top, left); centred
-- when top/left are omitted.
function reparam.embed(k, kh, kw, top, left)
  local cout, cig, h, w = unpack(k.shape)
  top = top or (kh - h) / 2
  left = left or (kw - w) / 2
  assert(top >= 0 and left >= 0 and top + h <= kh and left + w <= kw and top % 1 == 0 and left % 1 == 0,
    'kernel does not fit')
  local out = reparam.zeros(cout, cig, kh, kw)
  for oc = 0, cout * cig - 1 do
    for y = 0, h - 1 do
      for x = 0, w - 1 do
        out.data[(oc * kh + top + y) * kw + left + x] = k.data[(oc * h + y) * w + x]
      end
    end
  end
  return out
end

-- Each channel c reads only input channel c (c mod C/groups inside its group), with `value` on
-- every tap of the kh x kw window (identity: value 1 on the centre tap only).
local function per_channel(channels, groups, kh, kw, value, centre_only)
  local cig = channels / groups
  local k = reparam.zeros(channels, cig, kh, kw)
  for c = 0, channels - 1 do
    local base = (c * cig + c % cig) * kh * kw
    if centre_only then
      k.data[base + ((kh - 1) / 2) * kw + (kw - 1) / 2] = value
    else
      for t = 0, kh * kw - 1 do k.data[base + t] = value end
    end
  end
  return k
end

function reparam.identity(channels, groups, kh, kw)
  return per_channel(channels, groups, kh, kw, 1, true)
end

-- Transform V: kh x kw average pooling (count_include_pad) as a grouped conv.
function reparam.average(channels, groups, kh, kw)
  return per_channel(channels, groups, kh, kw, 1 / (kh * kw), false)
end

-- Transform II: acc += k, acc_b += b (shapes must agree).
function reparam.accumulate(acc, acc_b, k, b)
  assert(table.concat(acc.shape, 'x') == table.concat(k.shape, 'x'), 'branch kernels differ in shape')
  for i = 0, acc.numel - 1 do acc.data[i] = acc.data[i] + k.data[i] end
  for o = 0, acc.shape[1] - 1 do acc_b[o] = acc_b[o] + b[o] end
end

-- Transform III: 1x1 conv k1 [mid, cin/g, 1, 1] with bias b1, then k2 [cout, mid/g, kh, kw] with
-- bias b2, both with `groups` groups, as one [cout, cin/g, kh, kw] conv.
function reparam.sequential(k1, b1, k2, b2, groups)
  local mid, cig = k1.shape[1], k1.shape[2]
  local cout, midg, kh, kw = unpack(k2.shape)
  assert(k1.shape[3] == 1 and k1.shape[4] == 1 and midg * groups == mid, 'not a 1x1 -> kxk pair')
  local taps = kh * kw
  local k = reparam.zeros(cout, cig, kh, kw)
  local b = reparam.zero_bias(cout)
  local og = cout / groups
  for o = 0, cout - 1 do
    local m0 = math.floor(o / og) * midg
    local acc_b = b2[o]
    for m = 0, midg - 1 do
      local k2row = (o * midg + m) * taps
      local b1m = b1[m0 + m]
      for t = 0, taps - 1 do
        local v = k2.data[k2row + t]
        acc_b = acc_b + v * b1m
        if v ~= 0 then
          for i = 0, cig - 1 do
            local idx = (o * cig + i) * taps + t
            k.data[idx] = k.data[idx] + v * k1.data[(m0 + m) * cig + i]
          end
        end
      end
    end
    b[o] = acc_b
  end
  return k, b
end

function reparam.weight_tensor(k)
  local t = tensor.new(k.shape)
  for i = 0, k.numel - 1 do t.data[i] = k.data[i] end
  return t
end

function reparam.bias_tensor(b, n)
  local t = tensor.new({ n })
  for o = 0, n - 1 do t.data[o] = b[o] end
  return t
end

---------------------------------------------------------------------------------------------------
-- Blocks in the graph.

-- The blocks of `kind`, in graph order: { info, nodes (in order), input (tensor), output (node) }.
-- The output node is the one whose result leaves the block; anything else leaving it is an error.
function reparam.blocks(graph, kind)
  local list, by_info = {}, {}
  for _, n in ipairs(graph.nodes) do
    local info = n.block
    if info and info.kind == kind then
      local b = by_info[info]
      if not b then
        b = { info = info, nodes = {}, members = {} }
        by_info[info] = b
        list[#list + 1] = b
      end
      b.nodes[#b.nodes + 1] = n
      b.members[n] = true
    end
  end
  local uses = graph:consumers()
  for _, b in ipairs(list) do
    for _, n in ipairs(b.nodes) do
      for _, x in ipairs(n.inputs) do
        if not (x.producer and b.members[x.producer]) then
          if b.input and b.input ~= x then fail(b, 'reads more than one tensor from outside') end
          b.input = x
        end
      end
      for _, u in ipairs(uses[n.outputs[1].id] or {}) do
        if u == false or not b.members[u] then
          if b.output and b.output ~= n then fail(b, 'more than one of its results is used outside it') end
          b.output = n
        end
      end
    end
    if not b.input or not b.output then fail(b, 'is not connected to the rest of the graph') end
  end
  return list
end

-- The state_dict prefix of module `suffix` inside block b.
function reparam.path(b, suffix)
  return b.info.path == '' and suffix or (b.info.path .. '.' .. suffix)
end

-- The node of a block recorded by module `path.suffix` (its state_dict prefix).
function reparam.member(b, suffix)
  local want = reparam.path(b, suffix)
  for _, n in ipairs(b.nodes) do
    if n.module == want then return n end
  end
  fail(b, 'has no ' .. want .. ' layer')
end

-- A conv-BN branch of block b: the conv's kernel with the BN folded in (kernel, bias) and the conv.
function reparam.conv_bn(graph, b, conv_name, bn_name)
  local conv = reparam.member(b, conv_name)
  local k, bias = reparam.fuse_bn(graph, reparam.member(b, bn_name), reparam.kernel_of(graph.params[conv.params.weight]))
  return k, bias, conv
end

-- Replace the block by one conv2d (attrs as ops/conv2d.lua) computing kernel k and bias b, stored
-- under the block's `name`.weight / `name`.bias (the deploy module's name, e.g. rbr_reparam). The
-- conv takes the block output's place in the order.
function reparam.replace(graph, b, attrs, name, k, bias)
  local prefix = reparam.path(b, name)
  local out = b.output.outputs[1]
  local node = {
    op = 'conv2d', inputs = { b.input }, outputs = { out }, attrs = attrs,
    params = { weight = prefix .. '.weight', bias = prefix .. '.bias' },
    module = prefix, where = b.output.where, id = graph:new_node_id(),
  }
  out.producer = node
  graph.params[node.params.weight] = reparam.weight_tensor(k)
  graph.params[node.params.bias] = reparam.bias_tensor(bias, k.shape[1])
  graph:replace_node(b.output, node)
  for _, n in ipairs(b.nodes) do
    if n ~= b.output then graph:remove_node(n) end
  end
  return node
end

function reparam.conv_attrs(cin, cout, kh, kw, stride, padding, groups)
  return { cin = cin, cout = cout, groups = groups, kernel = { kh, kw }, stride = { stride[1], stride[2] },
           padding = { padding[1], padding[2] }, dilation = { 1, 1 } }
end

-- Count a fold in the report under `key`.
function reparam.count(report, key, n)
  if report then report[key] = (report[key] or 0) + n end
end

return reparam
