-- LeViT's attention (Graham et al., "LeViT: a Vision Transformer in ConvNet's Clothing for Faster
-- Inference", ICCV 2021, sec. 4.2-4.3; timm v0.4.12 levit.py), the core between the Linear+BN
-- projections and the Hardswish before proj:
--   nn.levit_attention(qkv, {heads, key_dim, value_dim, res}, module)
--       qkv [1, N, heads (2 key_dim + value_dim)], per head q | k | v (qkv.view(B, N, heads, -1));
--       N = res^2 tokens of a res x res grid
--   nn.levit_attention(kv, {heads, key_dim, value_dim, res, stride, q = q}, module)
--       AttentionSubsample: kv [1, N, heads (key_dim + value_dim)], per head k | v, and queries q
--       [1, Nq, heads key_dim] from the grid subsampled by stride (Nq = ((res - 1) / stride + 1)^2)
--   output [1, Nq, heads value_dim]; scores scale key_dim^-0.5 plus the per-head attention bias of
--   `module` (its attention_biases [heads, offsets] at the offset of each query-key pair: ops/levit_attention.lua)
return function(nn)
  local positive_int, fail = nn.positive_int, nn.fail

  function nn.levit_attention(x, o, module)
    local where = nn.caller_where()
    if type(o) ~= 'table' then fail(where, 'nn.levit_attention: options {heads, key_dim, value_dim, res[, stride, q]} expected') end
    if not nn.is_module(module) then fail(where, 'nn.levit_attention: the third argument must be the module holding attention_biases') end
    local heads = positive_int(o.heads, where, 'levit_attention heads')
    local kd = positive_int(o.key_dim, where, 'levit_attention key_dim')
    local vd = positive_int(o.value_dim, where, 'levit_attention value_dim')
    local res = positive_int(o.res, where, 'levit_attention res')
    local stride = positive_int(o.stride or 1, where, 'levit_attention stride')
    local inputs = { x }
    if o.q ~= nil then inputs[2] = o.q end
    return nn.record(where, module._path, 'levit_attention', inputs,
      { heads = heads, key_dim = kd, value_dim = vd, res = res, stride = stride, scale = kd ^ -0.5 },
      { biases = module:key('attention_biases') })
  end
end
