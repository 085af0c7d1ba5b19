-- arm64 (AArch64, NEON): every ISA fact the Lua side needs (compiler/targets/init.lua states the
-- rule and the fields). Halide 14's runtime says yes to every ARM feature on Linux, even on a
-- Cortex-A53 (shared/TARGETS.md), so arm64 is one tier without optional features: fp32 code has
-- the same NEON fmla with or without them.
local arm = {}

arm.arch, arm.bits, arm.os = 'arm', 64, 'linux'
arm.luajit_arch = 'arm64'
arm.multiarch = 'aarch64-linux-gnu'

arm.names = {
  arm64 = { 'arm-64-linux' },
}

-- the host code of a GPU target named alone (`arm64-opencl`, targets/gpu.lua)
arm.baseline = 'arm-64-linux'

-- f32 lanes of a 128-bit NEON vector; 32 vector registers on AArch64 (16 q registers on 32-bit ARM)
function arm.lanes() return 4 end
function arm.registers(tier) return tier:match('^arm%-32%-') and 16 or 32 end

-- per core: L1 data, L2, and a typical share of L3 (Neoverse N1 / Cortex-A72 class)
arm.cache = { l1 = 32 * 1024, l2 = 512 * 1024, l3_share = 1024 * 1024 }

-- output channels per weight block (w_block, u_block): one 64-byte line of f32, four vectors
arm.weight_block = 16

-- NEON is part of AArch64: compiler/peak.c needs no flags
function arm.peak_flags() return {} end

-- Winograd cost model (compiler/winograd.lua), a guess until measured on arm64 hardware: one core
-- of two 128-bit FMA pipes at about 2.5 GHz, 10 GB/s of DRAM per core; the fractions as on x86
function arm.winograd()
  return { peak = 40e9, dram = 10e9, eff = { direct = 0.95, [2] = 0.75, [4] = 0.6, [6] = 0.5 } }
end

-- foldc tune's knob spaces (compiler/tune.lua; fields as in x86.lua)
arm.knobs = {
  conv2d = { tile_co = 8, tile_x = 16, ci_block = { 16, 32, 64, 128, 256 }, prefetch = { -1, 16, 32, 64 },
             prefetch_bytes = 256 * 1024 },
  linear = { tile_co = { 1, 2, 3, 4, 6, 8 }, tile_r = { 2, 4, 6, 8, 12 } },
  linear_tokens = { tile_co = { 1, 2, 3, 4, 6 }, tile_r = 12, kb = { 32, 64, 128, 256 } },
}

-- compiler/tune_harness.c flushes with `dc civac` (clean and invalidate by address to the point of
-- coherency; Linux lets user space run it)
arm.flush = 'dc_civac'

arm.ld = 'aarch64-linux-gnu-ld' -- joins a multi-tier kernel's objects (ld -r)
-- cross C compiler and runner from an x86-64 Debian machine (gcc-aarch64-linux-gnu,
-- libc6-dev-arm64-cross, qemu-user-static)
arm.cc = 'aarch64-linux-gnu-gcc'
arm.run = { 'qemu-aarch64-static', '-L', '/usr/aarch64-linux-gnu' }
function arm.qemu_cpu() return nil end

-- the CPU model from /proc/cpuinfo's text (schedule records say where they were tuned): its
-- "model name" where the kernel gives one, else the first core's "CPU implementer" and "CPU part"
-- (e.g. 0x41 0xd0c: Arm Neoverse N1)
function arm.cpu_name(cpuinfo)
  local m = cpuinfo:match('model name%s*:%s*([^\n]-)%s*\n')
  if m and m ~= '' then return m end
  local impl, part = cpuinfo:match('CPU implementer%s*:%s*(%S+)'), cpuinfo:match('CPU part%s*:%s*(%S+)')
  return impl and part and ('implementer ' .. impl .. ' part ' .. part) or nil
end

return arm
