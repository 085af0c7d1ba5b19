-- Writes broken variants of a safetensors checkpoint for bad_input.sh:
--   luajit bad_weights.lua IN.safetensors OUTDIR
-- OUTDIR/missing.safetensors (first float key dropped), extra.safetensors (one key added),
-- shape.safetensors (first float tensor reshaped), truncated.safetensors (cut short).
-- Prints the names involved: missing_key, extra_key, shape_key, one per line.
local root = os.getenv('FOLDC_ROOT')
package.path = root .. '/compiler/?.lua;' .. root .. '/compiler/?/init.lua;' .. root .. '/?.lua;' .. package.path
local safetensors = require 'weights.safetensors'
local tensor = require 'tensor'

local src, out = arg[1], arg[2]
local w = safetensors.read(src)
local floats = {}
for _, name in ipairs(w.names) do
  if w.tensors[name].data then floats[#floats + 1] = name end
end

local function write(path, skip, extra, reshape)
  local list = {}
  for _, name in ipairs(floats) do
    if name ~= skip then
      local t = w.tensors[name]
      if name == reshape then t = tensor.new({ t.numel }, t.data) end
      list[#list + 1] = { name = name, tensor = t }
    end
  end
  if extra then list[#list + 1] = { name = extra, tensor = tensor.new({ 3 }) } end
  safetensors.write(path, list)
end

write(out .. '/missing.safetensors', floats[1])
write(out .. '/extra.safetensors', nil, 'head.unexpected_weight')
-- reshape a tensor of rank > 1 so the shape really differs
local reshape
for _, name in ipairs(floats) do
  if #w.tensors[name].shape > 1 then reshape = name; break end
end
write(out .. '/shape.safetensors', nil, nil, reshape)
local f = assert(io.open(src, 'rb'))
local bytes = f:read('*a')
f:close()
f = assert(io.open(out .. '/truncated.safetensors', 'wb'))
f:write(bytes:sub(1, math.floor(#bytes * 0.6)))
f:close()
print(floats[1])
print('head.unexpected_weight')
print(reshape)
