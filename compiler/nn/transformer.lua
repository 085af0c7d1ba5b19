-- Transformer pieces of the DSL (timm / naver-ai/pit / naver-ai/PfLayer semantics). Token tensors
-- are [1, N, D] (batch 1), feature maps [1, C, H, W].
--   nn.LayerNorm(d, {eps = 1e-5})   over the last dim, weight/bias [d] (PyTorch LayerNorm)
--   nn.Attention(dim, heads)        timm Attention with qkv bias: children qkv (dim -> 3 dim) and
--                                   proj (dim -> dim); softmax(q k^T (dim/heads)^-0.5) v per head
--   nn.attention(qkv, heads, where) the core alone: [1, N, 3 dim] -> [1, N, dim]
--   nn.parameter(module, name)      a declared parameter of `module` used as a tensor (pos_embed,
--                                   cls_token); no copy is made at run time
--   nn.tokens(x)                    [1, C, H, W] -> [1, H W, C]  (flatten(2).transpose(1, 2))
--   nn.token_map(t, h, w)           [1, h w, C] -> [1, C, h, w]  (transpose(1, 2).reshape)
--   nn.transpose_tokens(t)          [1, N, C] -> [1, C, N]  (x.transpose(1, 2)); a Linear on it is a
--                                   Linear over the tokens (MLP-Mixer), run with no copy
--   nn.cat_tokens(a, b)             concatenation along the token dim (torch.cat(dim=1))
--   nn.slice_tokens(t, start, n)    t[:, start:start+n]  (start is 0-based, as in PyTorch)
--   nn.select_token(t, i)           t[:, i] -> [1, D]
--   nn.mean_tokens(t)               t.mean(dim=1) -> [1, D]
--   nn.mul(x, s)                    x * s for a number s
--   nn.scale_channels(x, module, name)  x * module's parameter `name` per channel (layer scale,
--                                   e.g. ConvNeXt's layer_scale [C, 1, 1]; folded into x's producer)
--   nn.affine_channels(x, scale, shift)  x * scale[c] + shift[c] for lists of numbers, one a channel
--   nn.LayerNorm2d(d, {eps})        LayerNorm over the channels of a map [1, C, H, W] (torchvision's
--                                   LayerNorm2d, ConvNeXt's channels_first LayerNorm): keys weight, bias
--   nn.DropPath(p)                  stochastic depth: the identity at inference (as nn.Dropout)
-- Bad shapes fail at trace time with the module path and the description line.
return function(nn)
  local record, positive_int, fail = nn.record, nn.positive_int, nn.fail
  local ops = require 'ops'

  local function shape_str(s) return table.concat(s, 'x') end

  function nn.LayerNorm(d, o)
    o = o or {}
    local m = nn.Module('LayerNorm')
    positive_int(d, m._where, 'LayerNorm normalized_shape')
    m.d, m.eps = d, nn.finite(o.eps or 1e-5, m._where, 'LayerNorm eps', true)
    m:param('weight', { d })
    m:param('bias', { d })
    function m:forward(x)
      return record(nn.caller_where(), self._path, 'layernorm', { x }, { d = self.d, eps = self.eps },
        { weight = self:key('weight'), bias = self:key('bias') })
    end
    return m
  end

  -- In the channels-innermost layout a map is its tokens: the LayerNorm of each pixel's channels is
  -- the token LayerNorm between two views.
  function nn.LayerNorm2d(d, o)
    local m = nn.LayerNorm(d, o)
    m._kind = 'LayerNorm2d'
    local norm = m.forward
    function m:forward(x)
      local where = nn.caller_where()
      local s = nn.tensor_of(where, x, 'LayerNorm2d input').shape
      if #s ~= 4 then fail(where, self._path .. ': LayerNorm2d expects a map [1, C, H, W], got ' .. shape_str(s)) end
      return nn.token_map(norm(self, nn.tokens(x)), s[3], s[4])
    end
    return m
  end

  function nn.scale_channels(x, module, name)
    local where = nn.caller_where()
    if not nn.is_module(module) then fail(where, 'nn.scale_channels: not a module: ' .. ops.show(module)) end
    for _, p in ipairs(module._params) do
      if p.name == name then
        local n = 1
        for _, d in ipairs(p.shape) do n = n * d end
        return record(where, module:key(name), 'channel_scale', { x }, { n = n }, { scale = module:key(name) })
      end
    end
    fail(where, 'nn.scale_channels: ' .. (module._kind or 'module') .. ' declares no parameter ' .. ops.show(name))
  end

  function nn.affine_channels(x, scale, shift)
    local where = nn.caller_where()
    scale, shift = nn.plain(scale, where, 'affine_channels scale'), nn.plain(shift, where, 'affine_channels shift')
    if #scale ~= #shift or #scale == 0 then fail(where, 'affine_channels: scale and shift need one number a channel') end
    for i = 1, #scale do
      nn.finite(scale[i], where, 'affine_channels scale')
      nn.finite(shift[i], where, 'affine_channels shift')
    end
    return record(where, nil, 'channel_scale', { x }, { n = #scale, scale = scale, shift = shift })
  end

  local function attention(where, path, qkv, heads)
    positive_int(heads, where, 'attention num_heads')
    local s = nn.tensor_of(where, qkv, 'attention input').shape
    if #s ~= 3 or s[3] % 3 ~= 0 then
      fail(where, (path or 'attention') .. ': expects qkv tokens [1, N, 3*dim], got ' .. shape_str(s))
    end
    local dim = s[3] / 3
    if dim % heads ~= 0 then
      fail(where, string.format('%s: num_heads=%d does not divide dim=%d (the width of %s)', path or 'attention',
        heads, dim, path and (path .. '.qkv.weight / 3') or 'qkv'))
    end
    return record(where, path, 'attention', { qkv }, { heads = heads, head_dim = dim / heads,
      scale = (dim / heads) ^ -0.5 })
  end
  function nn.attention(qkv, heads) return attention(nn.caller_where(), nil, qkv, heads) end

  function nn.Attention(dim, heads, o)
    o = o or {}
    local m = nn.Module('Attention')
    positive_int(dim, m._where, 'Attention dim'); positive_int(heads, m._where, 'Attention num_heads')
    m.heads = heads
    m.qkv = nn.Linear(dim, dim * 3, { bias = o.qkv_bias ~= false })
    m.proj = nn.Linear(dim, dim)
    function m:forward(x)
      return self.proj(attention(nn.caller_where(), self._path, self.qkv(x), self.heads))
    end
    return m
  end

  function nn.parameter(module, name)
    local where = nn.caller_where()
    if not nn.is_module(module) then fail(where, 'nn.parameter: not a module: ' .. ops.show(module)) end
    for _, p in ipairs(module._params) do
      if p.name == name then
        return record(where, module:key(name), 'constant', {}, { shape = p.shape }, { value = module:key(name) })
      end
    end
    fail(where, 'nn.parameter: ' .. (module._kind or 'module') .. ' declares no parameter ' .. ops.show(name))
  end

  function nn.tokens(x)
    local where = nn.caller_where()
    nn.tensor_of(where, x, 'tokens input')
    return record(where, nil, 'to_tokens', { x })
  end

  function nn.token_map(t, h, w)
    local where = nn.caller_where()
    nn.tensor_of(where, t, 'token_map input')
    positive_int(h, where, 'token_map height'); positive_int(w, where, 'token_map width')
    return record(where, nil, 'to_map', { t }, { h = h, w = w })
  end

  function nn.transpose_tokens(t)
    local where = nn.caller_where()
    nn.tensor_of(where, t, 'transpose_tokens input')
    return record(where, nil, 'transpose_tokens', { t })
  end

  function nn.cat_tokens(a, b)
    return record(nn.caller_where(), nil, 'concat_tokens', { a, b })
  end

  function nn.slice_tokens(t, start, n)
    local where = nn.caller_where()
    nn.int(start, where, 'slice_tokens start', 0); positive_int(n, where, 'slice_tokens count')
    return record(where, nil, 'token_slice', { t }, { start = start, count = n })
  end

  function nn.select_token(t, i)
    nn.int(i, nn.caller_where(), 'select_token index', 0)
    return record(nn.caller_where(), nil, 'token_slice', { t }, { start = i, count = 1, squeeze = true })
  end

  function nn.mean_tokens(t)
    return record(nn.caller_where(), nil, 'token_mean', { t })
  end

  nn.DropPath = nn.stateless('DropPath', function(_, _, x) return x end)

  function nn.mul(x, s)
    nn.finite(s, nn.caller_where(), 'nn.mul factor')
    return record(nn.caller_where(), nil, 'scale', { x }, { s = s })
  end
end
