-- fuse_projection: a ResNet block's projection shortcut (He et al. 2016, option B) joins the
-- block's last conv in one kernel:
--   add(conv_A(x), conv_B(s))  ->  conv2d_proj(x, s)      (ops/conv2d_proj.lua)
-- where B is a dense, unpadded 1x1 conv with a square stride (the shortcut) and A is any conv that
-- is not a Winograd candidate (a 1x1 bottleneck conv: a stride-1 3x3 one keeps Winograd, which
-- saves more than this fusion). Both sums then meet in the accumulator: the shortcut's output is
-- no longer written to memory and read back as a residual (resnet50 layer1.0: 3.2 MB each way).
-- Exact up to float summation order. Both conv outputs must have no other use; runs after the
-- folds (BatchNorm already in the conv biases) and before fuse_epilogue, which then moves the
-- ReLU in.
local winograd = require 'winograd'
local ir = require 'ir'

local fuse_projection = {}

local function is_projection(n)
  local a = n.attrs
  return a.kernel[1] == 1 and a.kernel[2] == 1 and a.padding[1] == 0 and a.padding[2] == 0 and a.groups == 1
    and a.dilation[1] == 1 and a.dilation[2] == 1 and a.stride[1] == a.stride[2]
end

local function plain_conv(t, uses)
  local p = t.producer
  return p and p.op == 'conv2d' and not p.attrs.act and not p.inputs[2] and ir.single_use(uses, t)
    and #t.shape == 4 and p or nil
end

-- "layer1.0.conv3" + "layer1.0.downsample.0" -> "layer1.0.conv3+downsample.0"
local function joined_name(a, b)
  if not a or a == '' or not b or b == '' then return a or b end
  local prefix = a:match('^(.*%.)') or ''
  while prefix ~= '' and b:sub(1, #prefix) ~= prefix do prefix = prefix:match('^(.*%.)[^.]*%.$') or '' end
  return a .. '+' .. b:sub(#prefix + 1)
end

function fuse_projection.run(graph, report)
  local fused = 0
  local uses = graph:consumers()
  for _, add in ipairs({ unpack(graph.nodes) }) do
    if add.op == 'add' and not add.attrs.act then
      local p1, p2 = plain_conv(add.inputs[1], uses), plain_conv(add.inputs[2], uses)
      local main, proj
      if p1 and p2 then
        -- the shortcut is the projection: when both convs could be, the one with the larger
        -- stride, else the later one (a block traces its main branch first)
        local later = p2
        for _, n in ipairs(graph.nodes) do
          if n == p2 then later = p1 break elseif n == p1 then break end
        end
        local order = { p1, p2 }
        if p2.attrs.stride[1] > p1.attrs.stride[1] or (p2.attrs.stride[1] == p1.attrs.stride[1] and later == p2) then
          order = { p2, p1 }
        end
        for _, cand in ipairs(order) do
          local other = cand == p1 and p2 or p1
          if not main and is_projection(cand) and not winograd.eligible(other) then main, proj = other, cand end
        end
      end
      if main then
        local node = {
          op = 'conv2d_proj', inputs = { main.inputs[1], proj.inputs[1] }, outputs = add.outputs,
          module = joined_name(main.module, proj.module), where = main.where,
          params = { weight = main.params.weight, bias = main.params.bias,
                     proj_weight = proj.params.weight, proj_bias = proj.params.bias },
          attrs = {}, id = graph:new_node_id(),
        }
        for k, v in pairs(main.attrs) do node.attrs[k] = v end
        node.attrs.proj = { cin = proj.attrs.cin, stride = proj.attrs.stride }
        add.outputs[1].producer = node
        graph:replace_node(add, node)
        fused = fused + 1
      end
    end
  end
  if fused > 0 then graph:prune() end
  if report then report.fused_projection = (report.fused_projection or 0) + fused end
  return graph
end

return fuse_projection
