-- Activations (compiler/activations.lua): each reference against PyTorch's values at NaN, +-inf, 0
-- and a few points (torch 1.13 on this machine, F.<functional> on float32); the three lists of
-- names (the Lua table, halide/activation.h's generator parameter, tests/kernels/kernel_test.c's C
-- reference) agree; every DSL module and functional traces to an `act` node; and each activation
-- fused by passes/fuse_epilogue.lua into a conv, a conv + residual, a conv + projection, a linear,
-- a pool and an add gives what the unfused graph gives in the reference interpreter.
local nn = require 'nn'
local activations = require 'activations'
local cases = require 'tests.unit.reparam_cases'
local fold_bn = require 'passes.fold_bn'
local fuse_projection = require 'passes.fuse_projection'
local fuse_epilogue = require 'passes.fuse_epilogue'

local NAN, INF = 0 / 0, math.huge

-- PyTorch's values (float32) at: NaN, inf, -inf, 0, 3, -3, 7, -1e-30. nan marks NaN.
local X = { NAN, INF, -INF, 0, 3, -3, 7, -1e-30 }
local TORCH = {
  relu = { NAN, INF, 0, 0, 3, 0, 7, 0 },
  relu6 = { NAN, 6, 0, 0, 3, 0, 6, 0 },
  silu = { NAN, INF, NAN, 0, 2.857722520828247, -0.14227761328220367, 6.993622779846191, -5.000000015855384e-31 },
  hardswish = { NAN, INF, NAN, 0, 3, 0, 7, -5.000000015855384e-31 },
  hardsigmoid = { NAN, 1, 0, 0.5, 1, 0, 1, 0.5 },
  sigmoid = { NAN, 1, 0, 0.5, 0.9525741338729858, 0.04742587357759476, 0.9990890026092529, 0.5 },
  gelu = { NAN, INF, NAN, 0, 2.995950222015381, -0.004049867391586304, 7, -5.000000015855384e-31 },
  gelu_tanh = { NAN, INF, NAN, 0, 2.9963626861572266, -0.0036374330520629883, 7, -5.000000015855384e-31 },
  tanh = { NAN, 1, -1, 0, 0.9950547814369202, -0.9950547814369202, 0.9999983310699463, -1.0000000031710769e-30 },
}

local function read(path)
  local f = assert(io.open((os.getenv('FOLDC_ROOT') or '.') .. '/' .. path))
  local s = f:read('*a')
  f:close()
  return s
end

describe('activations', function()
  for _, a in ipairs(activations.list) do
    it(a.name .. ': the reference gives PyTorch\'s values, NaN and +-inf included', function()
      local want = assert(TORCH[a.name], 'no PyTorch values for ' .. a.name)
      for i, x in ipairs(X) do
        local got = a.f(x)
        if want[i] ~= want[i] then
          assert.is_true(got ~= got, string.format('%s(%s) = %s, torch gives NaN', a.name, x, got))
        elseif math.abs(want[i]) == INF then
          assert.are.equal(want[i], got)
        else
          assert.is_true(math.abs(got - want[i]) <= 1e-6 * math.max(1, math.abs(want[i])),
            string.format('%s(%s) = %.9g, torch gives %.9g', a.name, x, got, want[i]))
        end
      end
      assert.are.equal(a.maps_zero, a.f(0) == 0)
    end)
  end

  it('the kernels and the kernel test know the same names', function()
    local lua = { none = true }
    for _, a in ipairs(activations.list) do lua[a.name] = true end
    local function names(text, pattern)
      local t = {}
      for n in text:gmatch(pattern) do t[n] = true end
      return t
    end
    local halide = read('compiler/halide/activation.h')
    local map = halide:match('names = (%b{})')
    assert.are.same(lua, names(map, '{"([%w_]+)", Act::'))
    local c = read('tests/kernels/kernel_test.c')
    assert.are.same(lua, names(c:match('act_names%[%] = (%b{})'), '"([%w_]+)"'))
  end)

  it('every module and functional traces to an act node; options pick the variant', function()
    for _, a in ipairs(activations.list) do
      local m = nn.Module('M')
      m.act = nn[a.module](a.options)
      local functional = nn[a.functional]
      function m:forward(x) return functional(self.act(x), a.options) end
      local g = nn.trace(m, { 1, 2, 3, 3 }, 'm')
      assert.are.equal(2, #g.nodes)
      for _, n in ipairs(g.nodes) do
        assert.are.same({ 'act', a.name }, { n.op, n.attrs.act })
      end
    end
    assert.are.equal('gelu', nn.trace(nn.GELU(), { 1, 4 }, 'g').nodes[1].attrs.act)
    assert.are.equal('relu', nn.trace(nn.ReLU(true), { 1, 4 }, 'r').nodes[1].attrs.act)
  end)

  -- conv (+ residual | + projection) / linear / pool / add, then the activation
  local function net(kind, act)
    local m = nn.Module('Net')
    m.conv = nn.Conv2d(4, 8, 3, { padding = 1 })
    m.bn = nn.BatchNorm2d(8)
    m.short = nn.Conv2d(4, 8, 1, { stride = 1 })
    m.fc = nn.Linear(4 * 6 * 5, 10)
    function m:forward(x)
      local y
      if kind == 'conv' then y = self.bn(self.conv(x))
      elseif kind == 'residual' then y = self.conv(x) + nn.max_pool2d(self.short(x), 1)
      elseif kind == 'projection' then y = self.conv(nn.max_pool2d(x, 1)) + self.short(x)
      elseif kind == 'linear' then y = self.fc(nn.flatten(x, 1))
      elseif kind == 'pool' then y = nn.avg_pool2d(x, 3, { stride = 2, padding = 1 })
      else y = nn.max_pool2d(x, 1) + nn.avg_pool2d(x, 1) end
      return nn[act.functional](y, act.options)
    end
    return m
  end

  for _, a in ipairs(activations.list) do
    for _, kind in ipairs({ 'conv', 'residual', 'projection', 'linear', 'pool', 'add' }) do
      it(string.format('%s fused into a %s equals the unfused graph', a.name, kind), function()
        local m = net(kind, a)
        local rel, after = cases.before_after(m, { 1, 4, 6, 5 }, 7, { fold_bn, fuse_projection, fuse_epilogue })
        assert.is_true(rel < 1e-6, 'relative difference ' .. rel)
        assert.are.equal(0, cases.count(after, 'act'))
        local fused = 0
        for _, n in ipairs(after.nodes) do if n.attrs.act == a.name then fused = fused + 1 end end
        assert.are.equal(1, fused)
      end)
    end
  end
end)
