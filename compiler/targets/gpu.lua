-- GPU APIs: the facts the Lua side needs about a target's GPU kernels (compiler/targets/init.lua
-- states the rule). A GPU is not a family of its own: it is a Halide feature on top of an
-- architecture's host code (x86-64-linux-sse41-opencl: the launch logic and whatever a generator
-- leaves on the CPU is SSE4.1 code, the kernels OpenCL C). Halide 14 embeds the kernels in the
-- object (OpenCL C source, or PTX from LLVM's NVPTX back end), so a GPU bundle builds with a C
-- compiler alone; the runtime loads the driver at run time (runtime/foldc_gpu_driver.h).
-- Measured here (shared/TARGETS.md): OpenCL kernels run on pocl (the CPU) at about 1 GFLOP/s; CUDA
-- kernels compile for capabilities up to 86 (Halide 14 refuses 89 and 90: newer GPUs JIT sm_86 PTX).
local gpu = {}

-- --target words for a GPU, alone (`opencl`: this machine's family's baseline host code, or the
-- baseline tier of the CPU targets named beside it) or after a family name (`arm64-opencl`,
-- `x86-64-cuda_capability_80`); in a full Halide target string, the features themselves.
gpu.CUDA_CAPABILITIES = { 30, 32, 35, 50, 61, 70, 75, 80, 86 }
gpu.CUDA_DEFAULT = 70 -- Volta: runs on every NVIDIA GPU of the last eight years (newer ones JIT the PTX)

-- Per API: the Halide feature, the runtime's device interface and driver-symbol hook (weak in the
-- Halide runtime; the glue defines the hook), its header, the driver libraries to try in order
-- (runtime/foldc_gpu_driver.h states the rule), the run entry point whose presence in a kernel object
-- says that the generator put work on the GPU, and the name people know.
gpu.apis = {
  opencl = { feature = 'opencl', interface = 'halide_opencl_device_interface', get_symbol = 'halide_opencl_get_symbol',
             header = 'HalideRuntimeOpenCL.h', libraries = { 'libOpenCL.so.1', 'libOpenCL.so' },
             run_symbol = 'halide_opencl_run', name = 'OpenCL' },
  cuda = { feature = 'cuda', interface = 'halide_cuda_device_interface', get_symbol = 'halide_cuda_get_symbol',
           header = 'HalideRuntimeCuda.h', libraries = { 'libcuda.so.1', 'libcuda.so' },
           run_symbol = 'halide_cuda_run', name = 'CUDA' },
}

local function capability_list()
  local out = {}
  for i, c in ipairs(gpu.CUDA_CAPABILITIES) do out[i] = tostring(c) end
  return table.concat(out, ', ')
end

-- The GPU a word names ('opencl', 'cuda', 'cuda_capability_NN'): { api, features } (features: the
-- Halide feature text, e.g. 'cuda-cuda_capability_70'); nil for another word; raises for a
-- capability Halide 14 does not know.
function gpu.word(w)
  if w == 'opencl' then return { api = 'opencl', features = 'opencl' } end
  if w == 'cuda' then return { api = 'cuda', features = 'cuda-cuda_capability_' .. gpu.CUDA_DEFAULT } end
  local cc = w:match('^cuda_capability_(%d+)$')
  if not cc then return nil end
  for _, c in ipairs(gpu.CUDA_CAPABILITIES) do
    if tonumber(cc) == c then return { api = 'cuda', features = 'cuda-cuda_capability_' .. cc } end
  end
  error('"' .. w .. '": Halide 14 knows CUDA capabilities ' .. capability_list() .. ' (newer GPUs JIT the PTX of 86)', 0)
end

-- A full Halide target string's GPU: the tier without its GPU features, and { api, features }, or
-- the string and nil when it has none. Raises for two APIs in one string.
function gpu.split_tier(tier)
  local host, found, cc = {}, {}, nil
  for f in ('-' .. tier):gmatch('%-([^-]+)') do
    if f == 'opencl' or f == 'cuda' then found[#found + 1] = f
    elseif f:match('^cuda_capability_%d+$') then cc = f
    else host[#host + 1] = f end
  end
  if #found > 1 then error('"' .. tier .. '": one GPU API per target (found cuda and opencl)', 0) end
  if #found == 0 then
    if cc then error('"' .. tier .. '": ' .. cc .. ' without cuda', 0) end
    return tier, nil
  end
  local g = gpu.word(found[1] == 'cuda' and (cc or 'cuda') or 'opencl')
  if cc and found[1] ~= 'cuda' then error('"' .. tier .. '": ' .. cc .. ' without cuda', 0) end
  return table.concat(host, '-'), g
end

return gpu
