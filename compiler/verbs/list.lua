-- foldc list: the zoo with each model's family, parameters (trainable, as stored) and MACs.
local human = require('cli').human

return {
  help = 'List the zoo: name, family, parameters, MACs.',
  define = function() end,
  run = function()
    local zoo = require 'zoo'
    local tensor = require 'tensor'
    print(string.format('%-24s %-10s %12s %12s', 'name', 'family', 'params', 'MACs'))
    for _, e in ipairs(zoo.list()) do
      local g = zoo.trace(e)
      local params = 0
      for _, s in ipairs(g.param_specs) do
        if not s.buffer then params = params + tensor.numel(s.shape) end
      end
      print(string.format('%-24s %-10s %12s %12s', e.name, e.family, human(params), human(g:macs())))
    end
  end,
}
