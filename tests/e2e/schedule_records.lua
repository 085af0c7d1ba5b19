-- Every committed schedule record (schedules/<target>/*.txt) is still the signature of a kernel that
-- a zoo model produces: a change to a generator's parameters (a renamed or added one) would
-- otherwise orphan records silently, every build then running the generator's defaults. For each
-- records file, the models it was tuned for (schedules/README.md's list; MODELS below) are traced
-- with random weights, folded and lowered for the file's target, and their kernels' signatures
-- collected: every kernel step's, every conv's direct kernel (foldc tune tunes the direct kernel
-- of a conv that runs as Winograd too) and every conv's algorithm key (lower.algo_key). A record
-- no model produces is named with its file and line.
--   luajit tests/e2e/schedule_records.lua [MODEL...]   (FOLDC_ROOT set; default: MODELS)
package.path = os.getenv('FOLDC_ROOT') .. '/compiler/?.lua;' .. os.getenv('FOLDC_ROOT') .. '/compiler/?/init.lua;' .. package.path
local lfs = require 'lfs'
local pipeline = require 'pipeline'
local passes = require 'passes'
local lower = require 'lower'
local schedules = require 'schedules'
local targets = require 'targets'

-- The models the committed records were tuned for (schedules/README.md).
local MODELS = { 'resnet50', 'diracnet18', 'repvgg_a0', 'pf_resnet50_hybrid', 'pf_resnet50_max', 'pit_s',
                 'repmlp_res50_light_224', 'repvgg_b1g2', 'vit_small_patch16_224', 'vit_base_patch16_224',
                 'pf_vit_s_max' }
local models = #arg > 0 and arg or MODELS

local root = os.getenv('FOLDC_ROOT') .. '/schedules'
local failures, checked = 0, 0
for folder in lfs.dir(root) do
  local dir = root .. '/' .. folder
  if folder:sub(1, 1) ~= '.' and lfs.attributes(dir, 'mode') == 'directory' then
    local T = targets.resolve(folder)
    local produced = {}
    for _, model in ipairs(models) do
      local graph = passes.run(pipeline.bound_graph(model, 'random:1'))
      local program = lower.lower(graph, { target = folder })
      for _, step in ipairs(program.steps) do
        if step.kind == 'kernel' then
          produced[schedules.signature(step.generator, schedules.param_list(step.gparams))] = model
        end
      end
      for _, node in ipairs(graph.nodes) do
        if node.op == 'conv2d' then
          local key, gp = lower.algo_key(node, T)
          produced[key] = model
          produced[schedules.signature('conv2d', schedules.param_list(gp))] = model
        end
      end
    end
    for file in lfs.dir(dir) do
      if file:match('%.txt$') then
        local n = 0
        for line in io.lines(dir .. '/' .. file) do
          n = n + 1
          local sig = line:match('^([^#\t][^\t]*)\t')
          if sig then
            checked = checked + 1
            if not produced[sig] then
              failures = failures + 1
              io.stderr:write(string.format('schedules/%s/%s:%d: no model of %s produces %s\n', folder, file, n,
                table.concat(models, ' '), sig))
            end
          end
        end
      end
    end
  end
end
print(string.format('schedule records: %d checked, %d orphaned', checked, failures))
os.exit(failures == 0 and 0 or 1)
