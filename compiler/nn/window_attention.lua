-- Windowed attention and patch merging (Liu et al. 2021, "Swin Transformer"; Tu et al. 2022,
-- "MaxViT"). Token maps are [1, H W, C] tokens, row-major: the channels-last map [1, H, W, C].
--   nn.window_attention(qkv, heads, o)  the core over windows of an o.map = {H, W} token map:
--       o.window = {wh, ww}, o.shift = {sh, sw} (torch.roll by -shift before the partition, the
--       reference's mask on the shifted windows), o.dilation = {dh, dw} (window tokens dh apart:
--       MaxViT's grid), o.bias = {module, name} (a relative position bias table
--       [(2wh - 1)(2ww - 1), heads] of that module), o.mask = {module, name} (timm's attn_mask
--       buffer, checked to be the shifted windows' mask), o.scale (of q . k: head_dim^-0.5 unless
--       given; MaxViT's is dim^-0.5); [1, H W, 3 dim] -> [1, H W, dim]
--   nn.WindowAttention(dim, window, heads, o)  Swin's: children qkv (dim -> 3 dim, bias) and proj,
--       parameter relative_position_bias_table and buffer relative_position_index (o.index_shape:
--       its shape in the reference's state_dict, {N * N} for torchvision 0.14, {N, N} for timm;
--       recomputed, as the reference's __init__ computes it, so optional: checkpoints converted for
--       timm >= 0.6 drop it; o.pad: a map that is no multiple of the window is padded, as
--       torchvision 0.14 pads it: see forward); forward(x, map, shift, mask)
--   nn.pad_tokens(t, map, out)  the tokens [1, h w, C] of an h x w map as those of an out = {H, W}
--       map: zeros below and right of it, rows and columns past H, W dropped (F.pad on [1, h, w, C],
--       negative pads cropping)
--   nn.merge_patches(t, h, w)  [1, h w, C] -> [1, ceil(h/2) ceil(w/2), 4C]: each 2x2
--       neighbourhood's tokens concatenated as x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2],
--       x[1::2, 1::2], an odd map padded with a zero row or column first (Swin's PatchMerging before
--       its norm and reduction; torchvision 0.14 pads, timm v0.4.12 asserts even sizes)
return function(nn)
  local record, positive_int, fail = nn.record, nn.positive_int, nn.fail
  local ops = require 'ops'

  local function pair(v, where, what, min)
    if type(v) == 'number' then v = { v, v } end
    if type(v) ~= 'table' or #v ~= 2 then fail(where, what .. ' must be a number or a pair, got ' .. ops.show(v)) end
    for i = 1, 2 do nn.int(v[i], where, what, min) end
    return { v[1], v[2] }
  end

  local function param_key(where, ref, what)
    if ref == nil then return nil end
    local module, name = ref[1], ref[2]
    if not nn.is_module(module) then fail(where, what .. ': not a module: ' .. ops.show(module)) end
    for _, p in ipairs(module._params) do
      if p.name == name then return module:key(name), p.shape end
    end
    fail(where, what .. ': ' .. (module._kind or 'module') .. ' declares no parameter ' .. ops.show(name))
  end

  local function pad_tokens(where, path, t, map, out)
    nn.tensor_of(where, t, 'pad_tokens input')
    map, out = pair(map, where, 'pad_tokens map', 1), pair(out, where, 'pad_tokens size', 1)
    return record(where, path, 'pad_tokens', { t }, { h = map[1], w = map[2], out_h = out[1], out_w = out[2] })
  end

  local function window_attention(where, path, qkv, heads, o)
    positive_int(heads, where, 'attention num_heads')
    local s = nn.tensor_of(where, qkv, 'attention input').shape
    if #s ~= 3 or s[3] % 3 ~= 0 then
      fail(where, (path or 'attention') .. ': expects qkv tokens [1, N, 3*dim], got ' .. table.concat(s, 'x'))
    end
    local dim = s[3] / 3
    if dim % heads ~= 0 then fail(where, string.format('%s: num_heads=%d does not divide dim=%d', path or 'attention', heads, dim)) end
    local map, win = pair(o.map, where, 'window_attention map', 1), pair(o.window, where, 'window_attention window', 1)
    local shift = pair(o.shift or 0, where, 'window_attention shift', 0)
    local dil = pair(o.dilation or 1, where, 'window_attention dilation', 1)
    local params = {}
    local bias, bshape = param_key(where, o.bias, 'window_attention bias')
    if bias then
      local want = (2 * win[1] - 1) * (2 * win[2] - 1)
      if #bshape ~= 2 or bshape[1] ~= want or bshape[2] ~= heads then
        fail(where, string.format('%s: a relative position table of %dx%d windows and %d heads is [%d, %d], got [%s]',
          bias, win[1], win[2], heads, want, heads, table.concat(bshape, ', ')))
      end
      params.bias_table = bias
    end
    params.attn_mask = param_key(where, o.mask, 'window_attention mask')
    local scale = o.scale == nil and (dim / heads) ^ -0.5 or nn.finite(o.scale, where, 'window_attention scale', true)
    return record(where, path, 'attention', { qkv }, {
      heads = heads, head_dim = dim / heads, scale = scale,
      window = { map = map, size = win, shift = shift, dilation = dil } }, params)
  end
  function nn.window_attention(qkv, heads, o) return window_attention(nn.caller_where(), nil, qkv, heads, o or {}) end

  function nn.WindowAttention(dim, window, heads, o)
    o = o or {}
    local m = nn.Module('WindowAttention')
    positive_int(dim, m._where, 'WindowAttention dim'); positive_int(heads, m._where, 'WindowAttention num_heads')
    window = pair(window, m._where, 'WindowAttention window_size', 1)
    m.heads, m.window = heads, window
    local n = window[1] * window[2]
    m:param('relative_position_bias_table', { (2 * window[1] - 1) * (2 * window[2] - 1), heads })
    m:param('relative_position_index', o.index_shape or { n * n }, { buffer = true, dtype = 'I64', optional = true })
    m.qkv = nn.Linear(dim, dim * 3)
    m.proj = nn.Linear(dim, dim)
    -- o.pad (torchvision 0.14's shifted_window_attention): the normed h x w map padded with zero
    -- tokens on the bottom and right to multiples of the window (its qkv, the qkv bias, and its
    -- scores taking part in every window that holds them: nothing masks them), attention on the
    -- padded map, and the map cropped back before proj (a per-token Linear: the crop commutes).
    function m:forward(x, map, shift, mask)
      local where = nn.caller_where()
      map = pair(map, where, 'WindowAttention map', 1)
      local padded = map
      if o.pad then
        padded = { math.ceil(map[1] / self.window[1]) * self.window[1], math.ceil(map[2] / self.window[2]) * self.window[2] }
      end
      local grown = padded[1] ~= map[1] or padded[2] ~= map[2]
      if grown then x = pad_tokens(where, self._path .. '.pad', x, map, padded) end
      local y = window_attention(where, self._path, self.qkv(x), self.heads,
        { map = padded, window = self.window, shift = shift, bias = { self, 'relative_position_bias_table' }, mask = mask })
      if grown then y = pad_tokens(where, self._path .. '.crop', y, padded, map) end
      return self.proj(y)
    end
    return m
  end

  function nn.pad_tokens(t, map, out) return pad_tokens(nn.caller_where(), nil, t, map, out) end

  function nn.merge_patches(t, h, w)
    local where = nn.caller_where()
    nn.tensor_of(where, t, 'merge_patches input')
    positive_int(h, where, 'merge_patches height'); positive_int(w, where, 'merge_patches width')
    return record(where, nil, 'merge_patches', { t }, { h = h, w = w })
  end
end
