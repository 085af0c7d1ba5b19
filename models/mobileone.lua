-- MobileOne (Vasu et al., "MobileOne: An Improved One millisecond Mobile Backbone", CVPR 2023), as
-- apple/ml-mobileone's mobileone.py defines it, with its state_dict keys: stage0 (one 3x3
-- MobileOneBlock 3 -> min(64, 64 w1), stride 2, one conv branch), stage1..4 (Sequential of block
-- pairs: a 3x3 depthwise block, stride 2 in the first pair of each stage, then a 1x1 pointwise
-- block; children 0, 1, 2, ...), gap, linear. Stage widths 64 w1, 128 w2, 256 w3, 512 w4; blocks
-- per stage 2, 8, 10, 1; the stage blocks have num_conv_branches kxk branches each (4 in s0).
-- Each config describes both forms: the training form (rbr_conv / rbr_scale / rbr_skip, folded by
-- passes/fold_mobileone.lua) and, with deploy = true, the form reparameterize_model writes
-- (reparam_conv); `foldc build` takes whichever form the weights are in.
-- s4 (widths 3, 3.5, 3.5, 4) puts squeeze-excitation in the last 5 block pairs of stage3 and in
-- stage4 (use_se).
local nn = require 'nn'

local M = { family = 'MobileOne' }

-- The weights determine the number of classes (foldc takes it from the checkpoint, either form).
M.from_weights = { num_classes = { key = 'linear.weight', dim = 1 } }

-- mobileone{widths = {w1..w4} (multipliers), num_conv_branches = 1, use_se = false,
--           blocks = {2, 8, 10, 1}, num_classes = 1000, deploy = false}
function M.mobileone(cfg)
  local wm, blocks = cfg.widths, cfg.blocks or { 2, 8, 10, 1 }
  local branches = cfg.num_conv_branches or 1
  local m = nn.Module('MobileOne')
  local in_planes = math.min(64, math.floor(64 * wm[1]))
  m.stage0 = nn.MobileOneBlock(3, in_planes, 3, { stride = 2, padding = 1, deploy = cfg.deploy })
  local se_blocks = { 0, 0, cfg.use_se and math.floor(blocks[3] / 2) or 0, cfg.use_se and blocks[4] or 0 }
  for s = 1, 4 do
    local planes = math.floor(64 * 2 ^ (s - 1) * wm[s])
    local stage = nn.Sequential()
    for b = 1, blocks[s] do
      local se = b > blocks[s] - se_blocks[s]
      stage:add(nn.MobileOneBlock(in_planes, in_planes, 3, { stride = b == 1 and 2 or 1, padding = 1, groups = in_planes,
                                                            num_conv_branches = branches, use_se = se, deploy = cfg.deploy }))
      stage:add(nn.MobileOneBlock(in_planes, planes, 1, { num_conv_branches = branches, use_se = se, deploy = cfg.deploy }))
      in_planes = planes
    end
    m['stage' .. s] = stage
  end
  nn.staged_classifier(m, in_planes, cfg.num_classes)
  return m
end

local function config(widths, branches, use_se)
  return { build = M.mobileone, widths = widths, num_conv_branches = branches, use_se = use_se, has_deploy_form = true,
           input = { 1, 3, 224, 224 } }
end

M.configs = {
  mobileone_s0 = config({ 0.75, 1, 1, 2 }, 4),
  mobileone_s1 = config({ 1.5, 1.5, 2, 2.5 }, 1),
  mobileone_s2 = config({ 1.5, 2, 2.5, 4 }, 1),
  mobileone_s3 = config({ 2, 2.5, 3, 4 }, 1),
  mobileone_s4 = config({ 3, 3.5, 3.5, 4 }, 1, true),
}

return M
