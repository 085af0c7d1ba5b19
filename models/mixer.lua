-- MLP-Mixer (Tolstikhin et al., "MLP-Mixer: An all-MLP Architecture for Vision", NeurIPS 2021), as
-- timm v0.4.12's mlp_mixer.py defines it, with its state_dict keys: stem.proj (patch x patch conv
-- of stride patch), blocks.B.{norm1, mlp_tokens.{fc1, fc2}, norm2, mlp_channels.{fc1, fc2}}
-- (LayerNorm eps 1e-6, exact GELU), norm, head on the mean of the tokens. A block is
--   x = x + mlp_tokens(norm1(x)^T)^T,   x = x + mlp_channels(norm2(x))
-- with mlp_tokens a Linear over the N tokens (hidden 0.5 dim) and mlp_channels one over the channels
-- (hidden 4 dim). The transposes are free: passes/fold_token_transpose.lua runs the token MLP as
-- GEMMs W X on the token-major layout (ops/token_linear.lua).
local nn = require 'nn'

local M = { family = 'MLP-Mixer' }

local function Mlp(cin, hidden)
  local m = nn.Module('Mlp')
  m.fc1 = nn.Linear(cin, hidden)
  m.act = nn.GELU()
  m.fc2 = nn.Linear(hidden, cin)
  function m:forward(x) return self.fc2(self.act(self.fc1(x))) end
  return m
end

local function MixerBlock(dim, seq_len, tokens_dim, channels_dim)
  local m = nn.Module('MixerBlock')
  m.norm1 = nn.LayerNorm(dim, { eps = 1e-6 })
  m.mlp_tokens = Mlp(seq_len, tokens_dim)
  m.norm2 = nn.LayerNorm(dim, { eps = 1e-6 })
  m.mlp_channels = Mlp(dim, channels_dim)
  function m:forward(x)
    x = x + nn.transpose_tokens(self.mlp_tokens(nn.transpose_tokens(self.norm1(x))))
    return x + self.mlp_channels(self.norm2(x))
  end
  return m
end

-- mixer{img, patch, dim, depth, mlp_ratio = {0.5, 4}, num_classes = 1000}
function M.mixer(cfg)
  local m = nn.Module('MlpMixer')
  local where = m._where
  local grid = math.floor(cfg.img / cfg.patch)
  local ratio = cfg.mlp_ratio or { 0.5, 4 }
  local seq_len = grid * grid
  m.stem = nn.Module('PatchEmbed')
  m.stem.proj = nn.Conv2d(3, cfg.dim, cfg.patch, { stride = cfg.patch })
  m.stem.forward = function(self, x) return nn.tokens(self.proj(x)) end
  m.blocks = nn.Sequential()
  for _ = 1, cfg.depth do
    m.blocks:add(MixerBlock(cfg.dim, seq_len, math.floor(ratio[1] * cfg.dim), math.floor(ratio[2] * cfg.dim)))
  end
  m.norm = nn.LayerNorm(cfg.dim, { eps = 1e-6 })
  m.head = nn.Linear(cfg.dim, cfg.num_classes or 1000)
  function m:forward(x)
    local t = self.stem(x)
    if t.shape[2] ~= seq_len then
      nn.fail(where, string.format('mlp_tokens: %d tokens (a %dx%d input), but the patch embedding gives %d',
        seq_len, cfg.img, cfg.img, t.shape[2]))
    end
    return self.head(nn.mean_tokens(self.norm(self.blocks(t))))
  end
  return m
end

-- The number of classes from head.weight; the input size from the token MLP's width (fc1 maps the
-- N = (img / patch)^2 tokens): another size needs weights trained at it.
M.from_weights = { num_classes = { key = 'head.weight', dim = 1 },
                   img = { key = 'blocks.0.mlp_tokens.fc1.weight', dim = 2, root = 2, times = 'patch' } }

local function cfg(patch, dim, depth)
  return { build = M.mixer, img = 224, patch = patch, dim = dim, depth = depth, input = { 1, 3, 224, 224 },
           from_weights = M.from_weights, size_key = 'img' }
end

-- timm v0.4.12's mixer_{s,b,l}{32,16}_224 (the _in21k and _miil checkpoints are the same models
-- with 21843 or 11221 classes: num_classes comes from head.weight)
M.configs = {
  mixer_s32_224 = cfg(32, 512, 8),
  mixer_s16_224 = cfg(16, 512, 8),
  mixer_b32_224 = cfg(32, 768, 12),
  mixer_b16_224 = cfg(16, 768, 12),
  mixer_l32_224 = cfg(32, 1024, 24),
  mixer_l16_224 = cfg(16, 1024, 24),
}

return M
