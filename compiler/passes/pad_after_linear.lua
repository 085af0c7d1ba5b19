-- pad_after_linear: a Linear over the tokens of a zero-padded token map runs on the map's own tokens
-- and the padding moves after it, filled with the Linear's bias:
--   linear(pad_tokens(x, 0)) = pad_tokens(linear(x), b)
-- since each padded token is 0 and W 0 + b = b (exact: the kept tokens' outputs are the same
-- operations). torchvision 0.14's Swin pads the normed map to a multiple of the window before its
-- qkv Linear (ops/pad_tokens.lua); moved, qkv runs on h w tokens instead of the padded count: swin_t
-- at 256x256 (maps 64, 32, 16, 8 padded to 70, 35, 21, 14) 7.00 -> 5.95 G MACs. Applied when the
-- pad only grows the map (a crop is cheaper first), fills with zeros, has no other use, and the
-- Linear has no activation (fused later anyway: this runs before fuse_epilogue).
local ir = require 'ir'

local pad_after_linear = {}

function pad_after_linear.run(graph, report)
  local uses = graph:consumers()
  local moved = 0
  for _, fc in ipairs(graph.nodes) do
    local pad = fc.op == 'linear' and not fc.attrs.act and #fc.inputs == 1 and fc.inputs[1].producer
    local a = pad and pad.op == 'pad_tokens' and not pad.params.fill and pad.attrs
    if a and a.out_h >= a.h and a.out_w >= a.w and ir.single_use(uses, pad.outputs[1]) == fc then
      -- linear(pad(x)) -> pad(linear(x)): the pad's output tensor becomes the Linear's and vice versa
      local xs = pad.inputs[1].shape
      graph:swap(pad, fc, { xs[1], xs[2], fc.outputs[1].shape[3] })
      pad.params.fill = fc.params.bias -- nil: zeros
      moved = moved + 1
      uses = graph:consumers()
    end
  end
  if report then report.pad_after_linear = (report.pad_after_linear or 0) + moved end
  return graph
end

return pad_after_linear
