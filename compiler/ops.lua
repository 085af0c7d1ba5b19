-- The op registry: one file per op, ops/<name>.lua, each a table with
--   shape(node, input_shapes) -> output shape (raises a plain message on bad input),
--   macs(node)                -> multiply-accumulates,
--   eval(node, inputs, params)-> output tensor (the reference interpreter's semantics, NCHW),
--   lower(node, L, choice)    -> generator, generator parameters, argument views, or nothing for
--                                a view or a constant (no step). L: the lowering (lower.lua: views,
--                                weights, aliases); choice: lower.choose's for the node on the
--                                build's target (w_block; a conv2d's algo, which winograd.lower
--                                takes instead). Only maps the choice: target facts stay in
--                                lower.choose and compiler/targets/. Absent for ops that passes
--                                always remove (batchnorm, dirac_conv2d, partition_conv2d) and for
--                                flatten (lower.lua handles it).
-- Adding an op is adding its file (and, when its kernel has a choice to make, a case in
-- lower.choose).
local ops = {}

function ops.get(name)
  if type(name) ~= 'string' or not name:match('^[%w_]+$')
      or not package.searchpath('ops.' .. name, package.path) then
    error('unknown op ' .. tostring(name), 0)
  end
  return require('ops.' .. name)
end

-- The largest size or index an attribute may have: sizes reach C and Halide as int32.
ops.MAX_INT = 2 ^ 31 - 1

-- A value for a message, without running a metamethod of it.
function ops.show(v)
  local t = type(v)
  if t == 'number' or t == 'boolean' or t == 'nil' then return tostring(v) end
  if t == 'string' then return string.format('%q', #v > 40 and (v:sub(1, 40) .. '...') or v) end
  return 'a ' .. t
end

-- An integer size or index attribute in [min, ops.MAX_INT]; raises "WHAT must be ..., got V".
function ops.int(v, min, what)
  if type(v) ~= 'number' or v % 1 ~= 0 or v < min or v > ops.MAX_INT then
    error(string.format('%s must be %s integer, got %s', what,
      min == 1 and 'a positive' or min == 0 and 'a non-negative' or ('an >= ' .. min), ops.show(v)), 0)
  end
  return v
end

-- Output size of a sliding window, as PyTorch computes it (floor, or ceil when ceil_mode and the
-- last window starts inside the input or left padding). Kernel, stride and dilation are at least 1,
-- padding at least 0.
function ops.window_out(size, k, stride, pad, dil, ceil_mode)
  ops.int(k, 1, 'kernel_size'); ops.int(stride, 1, 'stride'); ops.int(pad, 0, 'padding'); ops.int(dil, 1, 'dilation')
  local span = size + 2 * pad - dil * (k - 1) - 1
  if span < 0 then return 0 end
  local out
  if ceil_mode then
    out = math.ceil(span / stride) + 1
    if (out - 1) * stride >= size + pad then out = out - 1 end
  else
    out = math.floor(span / stride) + 1
  end
  return out
end

function ops.expect_rank(shape, ranks, what)
  if not ranks[#shape] then
    local want = {}
    for r in pairs(ranks) do want[#want + 1] = tostring(r) end
    table.sort(want)
    error(string.format('%s expects a rank %s input, got shape %s', what, table.concat(want, ' or '),
      table.concat(shape, 'x')), 0)
  end
end

return ops
