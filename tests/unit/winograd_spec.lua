-- winograd_spec.lua: compiler/winograd.lua (Winograd F(m x m, 3x3) weights and choice). The
-- kernel itself is checked against the direct convolution by tests/kernels (conv2d_winograd cases)
-- and end to end by tests/e2e/winograd.sh.
local winograd = require 'winograd'
local tensor = require 'tensor'

local function node(cin, cout, h, w, opts)
  opts = opts or {}
  local k, s, p = opts.k or 3, opts.stride or 1, opts.pad or 1
  local oh, ow = math.floor((h + 2 * p - k) / s) + 1, math.floor((w + 2 * p - k) / s) + 1
  return {
    attrs = { cin = cin, cout = cout, groups = opts.groups or 1, kernel = { k, k }, stride = { s, s },
              padding = { p, p }, dilation = { opts.dil or 1, opts.dil or 1 } },
    inputs = { { shape = { 1, cin, h, w } } },
    outputs = { { shape = { 1, cout, oh, ow } } },
  }
end

describe('winograd', function()
  it('builds Toom-Cook matrices with A^T [(G g) . (B^T d)] = correlation, for every m', function()
    local rng = tensor.rng(7)
    for _, m in ipairs({ 2, 4, 6 }) do
      local AT, G, BT = winograd.matrices(m)
      local a = m + 2
      for _ = 1, 5 do
        local g, d = {}, {}
        for k = 1, 3 do g[k] = rng:uniform() * 2 - 1 end
        for k = 1, a do d[k] = rng:uniform() * 2 - 1 end
        local prod = {}
        for j = 1, a do
          local gg = G[j][1] * g[1] + G[j][2] * g[2] + G[j][3] * g[3]
          local dd = 0
          for k = 1, a do dd = dd + BT[j][k] * d[k] end
          prod[j] = gg * dd
        end
        for i = 1, m do
          local want = g[1] * d[i] + g[2] * d[i + 1] + g[3] * d[i + 2]
          local got = 0
          for j = 1, a do got = got + AT[i][j] * prod[j] end
          assert.is_true(math.abs(got - want) < 1e-12, string.format('m=%d i=%d: %g vs %g', m, i, got, want))
        end
      end
    end
  end)

  it('transforms OIHW weights into U = G g G^T packed (co, ci, ex, ey), co innermost', function()
    local rng = tensor.rng(3)
    local cout, cin, m = 5, 3, 4
    local W = tensor.new({ cout, cin, 3, 3 })
    for i = 0, W.numel - 1 do W.data[i] = rng:uniform() - 0.5 end
    local U = winograd.transform_weights(W, cout, cin, m)
    local G = winograd.G(m)
    local a = m + 2
    assert.same({ a, a, cin, cout }, U.shape)
    local Ub = winograd.transform_weights(W, cout, cin, m, 1) -- blocked by 1: (co, ey, ex, ci)
    assert.same({ cout, a, a, cin, 1 }, Ub.shape)
    for co = 0, cout - 1 do
      for ci = 0, cin - 1 do
        for ey = 1, a do
          for ex = 1, a do
            local want = 0
            for ky = 1, 3 do
              for kx = 1, 3 do
                want = want + G[ey][ky] * W.data[((co * cin + ci) * 3 + ky - 1) * 3 + kx - 1] * G[ex][kx]
              end
            end
            local got = U.data[(((ey - 1) * a + ex - 1) * cin + ci) * cout + co]
            assert.is_true(math.abs(got - want) <= 1e-6 * math.max(1, math.abs(want)))
            assert.equal(got, Ub.data[((co * a + ey - 1) * a + ex - 1) * cin + ci])
          end
        end
      end
    end
  end)

  it('chooses by shape: F(4x4) on big maps, F(2x2) at 14x14, direct at 7x7 and off stride-1 3x3', function()
    local T = require('targets').resolve('x86-64-avx512')
    assert.equal(4, winograd.choose(node(64, 64, 56, 56), { mode = 'auto', target = T }))
    assert.equal(4, winograd.choose(node(128, 128, 28, 28), { mode = 'auto', target = T }))
    assert.equal(2, winograd.choose(node(256, 256, 14, 14), { mode = 'auto', target = T }))
    assert.is_nil(winograd.choose(node(512, 512, 7, 7), { mode = 'auto', target = T }))
    assert.is_nil(winograd.choose(node(64, 64, 56, 56, { stride = 2 }), { mode = 'auto', target = T }))
    assert.is_nil(winograd.choose(node(64, 64, 56, 56, { groups = 2 }), { mode = 'winograd', target = T }))
    assert.is_nil(winograd.choose(node(64, 64, 56, 56, { dil = 2, pad = 2 }), { mode = 'winograd', target = T }))
    assert.is_nil(winograd.choose(node(64, 64, 56, 56, { k = 5, pad = 2 }), { mode = 'winograd', target = T }))
    assert.is_nil(winograd.choose(node(8, 64, 56, 56), { mode = 'winograd', target = T }))
    assert.is_nil(winograd.choose(node(64, 64, 56, 56), { mode = 'direct', target = T }))
    assert.equal(4, winograd.choose(node(512, 512, 7, 7), { mode = 'winograd', target = T }))
    assert.equal(2, winograd.choose(node(64, 64, 56, 56), { mode = 'winograd2', target = T }))
    assert.equal(6, winograd.choose(node(64, 64, 56, 56), { mode = 'winograd6', target = T }))
    assert.has_error(function() winograd.choose(node(64, 64, 56, 56), { mode = 'fast', target = T }) end)
  end)
end)
