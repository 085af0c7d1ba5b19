-- foldc entry point: sets the module path, runs one verb, and turns any error into one line on
-- stderr with a non-zero exit.
local root = os.getenv('FOLDC_ROOT') or (arg[0]:match('^(.*)/compiler/[^/]*$') or '.')
package.path = root .. '/compiler/?.lua;' .. root .. '/compiler/?/init.lua;' .. root .. '/?.lua;' .. package.path

local ok, err = xpcall(function() return require('cli').main(arg) end, function(e)
  if os.getenv('FOLDC_TRACEBACK') then return debug.traceback(tostring(e), 2) end
  return tostring(e)
end)
if not ok then
  io.stderr:write('foldc: ', (tostring(err):gsub('\n', ' ')), '\n')
  os.exit(1)
end
os.exit(err or 0)
