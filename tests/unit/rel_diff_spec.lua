-- The accuracy measure cannot be fooled by NaN or infinity in either operand.
local tensor = require 'tensor'
local interpreter = require 'interpreter'

describe('rel_diff', function()
  it('is the largest difference over the largest reference magnitude', function()
    local rel = interpreter.rel_diff(tensor.new({ 3 }, { 1, 2, 4.5 }), tensor.new({ 3 }, { 1, 2, 4 }))
    assert.are.equal(0.125, rel)
  end)
  it('is NaN (so never within a tolerance) when the output holds a NaN', function()
    local rel = interpreter.rel_diff(tensor.new({ 3 }, { 0 / 0, 2, 4 }), tensor.new({ 3 }, { 1, 2, 4 }))
    assert.is_false(rel <= 1e-4)
  end)
  it('is not within tolerance when the output holds an infinity', function()
    local rel = interpreter.rel_diff(tensor.new({ 2 }, { math.huge, 2 }), tensor.new({ 2 }, { 1, 2 }))
    assert.is_false(rel <= 1e-4)
  end)
end)
