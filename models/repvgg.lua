-- RepVGG (Ding et al., "RepVGG: Making VGG-style ConvNets Great Again", CVPR 2021), as
-- DingXiaoH/RepVGG's repvgg.py defines it, with its state_dict keys: stage0 (one RepVGGBlock,
-- stride 2), stage1..4 (Sequential of RepVGGBlocks, the first of each with stride 2), gap, linear.
-- Each config describes both forms: the training form (rbr_dense / rbr_1x1 / rbr_identity, folded by
-- passes/fold_repvgg.lua) and, with deploy = true, the converted form (rbr_reparam); `foldc build`
-- takes whichever form the weights are in. Groups (the g2/g4 variants) apply to the even-numbered
-- layers 2, 4, ..., 26, counting stage1's first block as layer 1.
local nn = require 'nn'

local M = { family = 'RepVGG' }

-- The weights determine the number of classes (foldc takes it from the checkpoint, either form).
M.from_weights = { num_classes = { key = 'linear.weight', dim = 1 } }

local grouped_layers = {}
for l = 2, 26, 2 do grouped_layers[l] = true end

-- repvgg{blocks = {n1..n4}, widths = {w1..w4} (multipliers), groups = 1|2|4, num_classes = 1000,
--        deploy = false}
function M.repvgg(cfg)
  local wm = cfg.widths
  local groups = cfg.groups or 1
  local block_opts = function(stride, layer)
    return { stride = stride, groups = grouped_layers[layer] and groups or 1, deploy = cfg.deploy }
  end
  local m = nn.Module('RepVGG')
  local in_planes = math.min(64, math.floor(64 * wm[1]))
  m.stage0 = nn.RepVGGBlock(3, in_planes, block_opts(2, 0))
  local layer = 1
  for s = 1, 4 do
    local planes = math.floor(64 * 2 ^ (s - 1) * wm[s])
    local stage = nn.Sequential()
    for b = 1, cfg.blocks[s] do
      stage:add(nn.RepVGGBlock(in_planes, planes, block_opts(b == 1 and 2 or 1, layer)))
      in_planes = planes
      layer = layer + 1
    end
    m['stage' .. s] = stage
  end
  nn.staged_classifier(m, in_planes, cfg.num_classes)
  return m
end

local function config(blocks, widths, groups)
  return { build = M.repvgg, blocks = blocks, widths = widths, groups = groups, has_deploy_form = true,
           input = { 1, 3, 224, 224 } }
end

local A, B = { 2, 4, 14, 1 }, { 4, 6, 16, 1 }

M.configs = {
  repvgg_a0 = config(A, { 0.75, 0.75, 0.75, 2.5 }),
  repvgg_a1 = config(A, { 1, 1, 1, 2.5 }),
  repvgg_a2 = config(A, { 1.5, 1.5, 1.5, 2.75 }),
  repvgg_b0 = config(B, { 1, 1, 1, 2.5 }),
  repvgg_b1 = config(B, { 2, 2, 2, 4 }),
  repvgg_b1g2 = config(B, { 2, 2, 2, 4 }, 2),
  repvgg_b1g4 = config(B, { 2, 2, 2, 4 }, 4),
  repvgg_b2 = config(B, { 2.5, 2.5, 2.5, 5 }),
  repvgg_b2g4 = config(B, { 2.5, 2.5, 2.5, 5 }, 4),
  repvgg_b3 = config(B, { 3, 3, 3, 5 }),
}

return M
