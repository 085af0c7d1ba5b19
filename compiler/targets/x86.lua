-- x86-64: every ISA fact the Lua side needs (compiler/targets/init.lua states the rule and the
-- fields). A tier is one full Halide target string; Halide 14 features do not imply each other, so
-- each tier spells its whole chain. Measured here (shared/TARGETS.md): one 3x3 conv, 1 thread,
-- AVX-512 1.99 ms, AVX2+FMA 3.95 ms, SSE4.1 7.04 ms; the multi-tier library dispatches on cpuid.
local x86 = {}

x86.arch, x86.bits, x86.os = 'x86', 64, 'linux'
x86.luajit_arch = 'x64'
x86.multiarch = 'x86_64-linux-gnu'

local AVX512 = 'x86-64-linux-avx-avx2-avx512-avx512_skylake-f16c-fma-sse41'
local AVX2 = 'x86-64-linux-avx-avx2-f16c-fma-sse41'
local SSE41 = 'x86-64-linux-sse41'

-- --target names: their tiers, in priority order (the last one is the unconditional fallback)
x86.names = {
  ['x86-64'] = { AVX512, AVX2, SSE41 },
  ['x86-64-avx512'] = { AVX512 },
  ['x86-64-avx2'] = { AVX2 },
}

-- the host code of a GPU target named alone (`opencl`, targets/gpu.lua): runs on any x86-64
x86.baseline = SSE41

local function has(tier, feature) return ('-' .. tier .. '-'):find('-' .. feature .. '-', 1, true) ~= nil end
local function avx512(tier) return tier:match('avx512') ~= nil end

-- f32 lanes of a vector (as the generators' natural_vector_size), and vector registers (32 zmm
-- with AVX-512, else 16 xmm/ymm; halide/foldc_common.h vector_registers)
function x86.lanes(tier) return avx512(tier) and 16 or has(tier, 'avx') and 8 or 4 end
function x86.registers(tier) return avx512(tier) and 32 or 16 end

-- per core: L1 data, L2, and a typical share of L3 (this project's AMD EPYC: 32 MB over 8 cores)
x86.cache = { l1 = 32 * 1024, l2 = 1024 * 1024, l3_share = 4 * 1024 * 1024 }

-- output channels per weight block of the conv, Winograd and token-Linear kernels (w_block,
-- u_block): one 64-byte line of f32, whole vectors at every tier
x86.weight_block = 16

-- clang flags to build compiler/peak.c for a tier's widest vectors
function x86.peak_flags(tier)
  if avx512(tier) then return { '-mavx512f', '-mfma' } end
  if has(tier, 'avx2') and has(tier, 'fma') then return { '-mavx2', '-mfma' } end
  if has(tier, 'avx') then return { '-mavx' } end
  return has(tier, 'sse41') and { '-msse4.1' } or {}
end

-- Winograd cost model (compiler/winograd.lua): the FMA peak of one core, the DRAM bandwidth one
-- core gets, and the fraction of the peak each algorithm reaches (direct 95%, F(2x2) 75%, F(4x4)
-- 60%: the transforms' share grows with m). Calibrated on resnet50's layers with AVX-512, 1 thread;
-- the narrower tiers scale the peak by their lanes (the tiers' measured conv times halve with them).
function x86.winograd(tier)
  return { peak = 230e9 * x86.lanes(tier) / 16, dram = 20e9, eff = { direct = 0.95, [2] = 0.75, [4] = 0.6, [6] = 0.5 } }
end

-- foldc tune's knob spaces (compiler/tune.lua): conv2d register tiles up to tile_co vectors x
-- tile_x pixels, reduction blocks, weight prefetch distances (for weights of prefetch_bytes or
-- more); linear tiles; linear_tokens tiles and weight panel depths
x86.knobs = {
  conv2d = { tile_co = 8, tile_x = 16, ci_block = { 16, 32, 64, 128, 256 }, prefetch = { -1, 16, 32, 64 },
             prefetch_bytes = 256 * 1024 },
  linear = { tile_co = { 1, 2, 3, 4, 6, 8 }, tile_r = { 2, 4, 6, 8, 12 } },
  linear_tokens = { tile_co = { 1, 2, 3, 4, 6 }, tile_r = 12, kb = { 32, 64, 128, 256 } },
}

-- how compiler/tune_harness.c flushes a buffer from the caches (its FOLDC_FLUSH_* macro)
x86.flush = 'clflush'

x86.ld = 'x86_64-linux-gnu-ld' -- joins a multi-tier kernel's objects (ld -r)
-- the C compiler and runner for this family from another machine, and the emulated CPU that runs a
-- tier which this CPU cannot (qemu-user; nil: none needed, or none has the features)
x86.cc = 'x86_64-linux-gnu-gcc'
x86.run = { 'qemu-x86_64-static' }
function x86.qemu_cpu(tier)
  if avx512(tier) then return nil end -- qemu 7.2 TCG has no AVX-512
  return has(tier, 'avx2') and 'Haswell' or 'Nehalem'
end

-- the CPU model from /proc/cpuinfo's text ("model name"; schedule records say where they were tuned)
function x86.cpu_name(cpuinfo)
  local m = cpuinfo:match('\nmodel name%s*:%s*([^\n]-)%s*\n') or cpuinfo:match('^model name%s*:%s*([^\n]-)%s*\n')
  return m ~= '' and m or nil
end

return x86
