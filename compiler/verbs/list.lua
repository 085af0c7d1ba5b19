-- foldc list: the zoo with each model's family, parameters (trainable, as stored) and MACs.
local human = require('cli').human

return {
  help = 'List the zoo: name, family, parameters, MACs.',
  define = function() end,
  run = function()
    local zoo = require 'zoo'
    local tensor = require 'tensor'
    local entries, width = zoo.list(), 4
    for _, e in ipairs(entries) do width = math.max(width, #e.name) end
    local fmt = '%-' .. width .. 's  %-10s %12s %12s'
    print(string.format(fmt, 'name', 'family', 'params', 'MACs'))
    for _, e in ipairs(entries) do
      local g = zoo.trace(e)
      local params = 0
      for _, s in ipairs(g.param_specs) do
        if not s.buffer then params = params + tensor.numel(s.shape) end
      end
      print(string.format(fmt, e.name, e.family, human(params), human(g:macs())))
    end
  end,
}
