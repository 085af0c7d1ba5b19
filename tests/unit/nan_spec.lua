-- NaN as PyTorch propagates it, in the reference interpreter: torch.relu(NaN) = NaN, a max-pool
-- window holding a NaN gives NaN (padding never does), and an all-NaN input gives an all-NaN
-- output through every op family of the fixtures (conv + BN + ReLU, max/avg pool, residual add,
-- GAP + Linear, GELU, LayerNorm, attention's softmax, PfLayer's max mixer), as given and after the
-- passes (fused epilogues). The bundles' kernels are held to the same by tests/kernels (NaN pass)
-- and tests/e2e/nan_propagation.sh.
local cases = require 'tests.unit.fixture_cases'
local pipeline = require 'pipeline'
local passes = require 'passes'
local interpreter = require 'interpreter'
local tensor = require 'tensor'
local ops = require 'ops'

local NAN = 0 / 0

local function is_nan(v) return v ~= v end

describe('NaN propagation (reference interpreter)', function()
  it('relu: NaN stays NaN, negatives and -0 become 0', function()
    local x = tensor.new({ 5 })
    local vals = { NAN, -1, 2, -0.0, -math.huge }
    for i = 1, 5 do x.data[i - 1] = vals[i] end
    local y = ops.get('act').eval({ attrs = { act = 'relu' } }, { x })
    assert.is_true(is_nan(y.data[0]))
    assert.are.same({ 0, 2, 0, 0 }, { y.data[1], y.data[2], y.data[3], y.data[4] })
  end)

  it('max pool: NaN where a window holds the NaN, not from padding; -inf data stays -inf', function()
    -- 1x1x5x5, 3x3 stride 2 padding 1 -> 3x3; NaN at (0, 0), -inf at (4, 4)
    local x = tensor.new({ 1, 1, 5, 5 })
    for i = 0, 24 do x.data[i] = i end
    x.data[0] = NAN
    for _, r in ipairs({ 3, 4 }) do for c = 3, 4 do x.data[r * 5 + c] = -math.huge end end
    local node = { attrs = { mode = 'max', kernel = { 3, 3 }, stride = { 2, 2 }, padding = { 1, 1 } },
                   outputs = { { shape = { 1, 1, 3, 3 } } } }
    local y = ops.get('pool2d').eval(node, { x })
    -- only the window of output (0, 0) covers input (0, 0)
    assert.is_true(is_nan(y.data[0]))
    for i = 1, 8 do assert.is_false(is_nan(y.data[i]), 'output ' .. i) end
    assert.are.equal(-math.huge, y.data[8]) -- window rows/cols 3..4 (+ padding): all -inf
    assert.are.equal(22, y.data[7])
    node.attrs.act = 'relu'
    y = ops.get('pool2d').eval(node, { x })
    assert.is_true(is_nan(y.data[0]))
    assert.are.equal(0, y.data[8])
  end)

  local fixtures = {
    'bn_conv_relu_6to8', 'residual_relu_8', 'maxpool_k3_s2_p1', 'maxpool_k2_s3_p1_ceil',
    'avgpool_k3_s2_p1_ceil_excl', 'gap_linear_relu_10to10', 'conv_bn_relu_k3_s2_p1_3to10',
    'resnet18_w8', 'gelu_50x40', 'layernorm_50x40', 'attention_h1_n10_d8', 'max_mixer_49x16',
    'block_attn_50x32', 'block_max_49x32',
  }
  for _, name in ipairs(fixtures) do
    it('all-NaN input gives all-NaN output: ' .. name, function()
      local file
      for _, d in ipairs({ 'fixtures', 'transformers' }) do
        local f = cases.description(d)
        for _, n in ipairs(cases.names(f)) do if n == name then file = f end end
      end
      assert.is_not_nil(file, name .. ' not in tests/fixtures/*.lua')
      local graph = pipeline.bound_graph(file .. ':' .. name, cases.data .. name .. '.safetensors')
      local x = tensor.new(graph.input.shape)
      for i = 0, x.numel - 1 do x.data[i] = NAN end
      for what, g in pairs({ given = graph, deploy = passes.run(graph:clone()) }) do
        local y = interpreter.run(g, x)[1]
        local finite = 0
        for i = 0, y.numel - 1 do if not is_nan(y.data[i]) then finite = finite + 1 end end
        assert.are.equal(0, finite, name .. ' (' .. what .. '): outputs that are not NaN')
      end
    end)
  end
end)
