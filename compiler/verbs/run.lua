-- foldc run: build (kernels cached), compile the bundle with the system C compiler, run one input;
-- the model is traced at the input file's shape (its first dimension: the batch).
-- The input, the output path and how this machine runs the target (natively, or under an emulator
-- with a cross compiler: backend.runner) are checked before anything is compiled.
local cli = require 'cli'
local lfs = require 'lfs'
local sys = require 'sys'

-- --output must name a file (not a folder) in an existing folder this process may write.
local function check_output(path)
  local function refuse(why)
    error(string.format('--output "%s": %s', (path:gsub('[^\32-\126]', '?')), why), 0)
  end
  if path == '' then refuse('empty path') end
  if path:match('/$') then refuse('ends in /: names a folder, not a file') end
  if lfs.attributes(path, 'mode') == 'directory' then refuse('is a folder, not a file') end
  local parent = path:match('^(.*)/[^/]*$') or '.'
  if parent == '' then parent = '/' end
  if lfs.attributes(parent, 'mode') ~= 'directory' then refuse('folder ' .. parent .. ' does not exist') end
  if not sys.writable(parent) then refuse('folder ' .. parent .. ' is not writable') end
end

return {
  help = 'Build (kernels cached), compile the bundle and run one input.',
  define = function(c)
    cli.model_args(c)
    c:option('--input', 'Input tensor (.npy, float32, NCHW).'):count(1)
    c:option('--output', 'Output tensor to write (.npy).'):count(1)
  end,
  run = function(a)
    local pipeline = require 'pipeline'
    local backend = require 'backend'
    local npy = require 'weights.npy'
    check_output(a.output)
    local runner = backend.runner(a.target)
    local input = npy.read(a.input)
    local deploy = pipeline.deploy_graph(a.model, a.weights, { input = input.shape, input_what = a.input })
    npy.write(a.output, backend.run_once(deploy, input, { target = a.target, runner = runner }))
  end,
}
