-- Channel structure of feature maps [1, C, H, W], as PyTorch writes it (dims are PyTorch's, 0-based):
--   nn.cat({a, b, ...}, 1)           torch.cat(tensors, 1): ops/concat.lua, no copy (lower.lua)
--   nn.chunk(x, n, 1)                x.chunk(n, dim=1): channel slices of ceil(C/n) channels (the last
--                                    may be smaller, and there may be fewer than n), views
--                                    (ops/channel_slice.lua); returns them as several values
--   nn.channel_shuffle(x, groups),   torchvision's shufflenetv2.channel_shuffle / nn.ChannelShuffle:
--   nn.ChannelShuffle(groups)        y[c] = x[(c % groups) * C/groups + c // groups]
--                                    (ops/channel_shuffle.lua)
return function(nn)
  local ops = require 'ops'
  local record, fail = nn.record, nn.fail

  local function channels_dim(where, what, dim)
    if dim ~= 1 then fail(where, what .. ' works along channels only (dim=1), got dim=' .. ops.show(dim)) end
  end

  function nn.cat(list, dim)
    local where = nn.caller_where()
    channels_dim(where, 'cat', dim)
    if type(list) ~= 'table' or rawget(list, 1) == nil then fail(where, 'cat needs a list of tensors, got ' .. ops.show(list)) end
    local inputs = {}
    for i = 1, #list do inputs[i] = rawget(list, i) end
    return record(where, nil, 'concat', inputs)
  end

  function nn.chunk(x, n, dim)
    local where = nn.caller_where()
    channels_dim(where, 'chunk', dim)
    nn.positive_int(n, where, 'chunk count')
    local s = nn.tensor_of(where, x, 'chunk input').shape
    if #s ~= 4 then fail(where, 'chunk expects a feature map [1, C, H, W], got ' .. table.concat(s, 'x')) end
    local size = math.ceil(s[2] / n)
    local out = {}
    for start = 0, s[2] - 1, size do
      out[#out + 1] = record(where, nil, 'channel_slice', { x }, { start = start, count = math.min(size, s[2] - start) })
    end
    return unpack(out)
  end

  local function shuffle(where, path, x, groups)
    nn.positive_int(groups, where, 'channel_shuffle groups')
    return record(where, path, 'channel_shuffle', { x }, { groups = groups })
  end
  function nn.channel_shuffle(x, groups) return shuffle(nn.caller_where(), nil, x, groups) end
  nn.ChannelShuffle = nn.stateless('ChannelShuffle', shuffle)
end
