-- Bounds on what hostile input may make foldc do: the memory a checkpoint may expand to, the work a
-- description may run, the size of the bundle it may ask for. Each bound has a default and can be
-- raised (or lowered) for one run with `--limit NAME=VALUE` (repeatable); a refusal names the bound
-- and the option that raises it, so the user knows what to do when the input is legitimate.
local limits = {}

-- name -> { value = default, unit = for messages, help = one line }
local BOUNDS = {
  memory_gib = { value = 16, unit = 'GiB',
    help = 'largest activation arena, and largest weights, a model may need' },
  expansion = { value = 8,
    help = 'how many times its file size (at least 1 MiB) a checkpoint may expand to as float32 tensors (overlapping views, fp16)' },
  deflate_ratio = { value = 100,
    help = 'largest ratio of inflated to deflated size (at least 16 KiB) of one compressed entry in a zip checkpoint' },
  description_mega_instructions = { value = 200, unit = 'M VM instructions',
    help = 'work a description may do while it is loaded and while its model is built' },
}

local values = {}
for name, b in pairs(BOUNDS) do values[name] = b.value end

function limits.names()
  local names = {}
  for name in pairs(BOUNDS) do names[#names + 1] = name end
  table.sort(names)
  return names
end

function limits.get(name)
  local v = values[name]
  if v == nil then error('limits: no bound named ' .. tostring(name), 2) end
  return v
end

-- Apply one `NAME=VALUE` from the command line.
function limits.set(spec)
  local name, text = tostring(spec):match('^([%w_]+)=(.*)$')
  local v = text and tonumber(text)
  if not name or not BOUNDS[name] then
    error('--limit ' .. tostring(spec) .. ': expected NAME=VALUE with NAME one of ' .. table.concat(limits.names(), ', '), 0)
  end
  if not v or v ~= v or v <= 0 or v == math.huge then
    error('--limit ' .. spec .. ': the value must be a positive number', 0)
  end
  values[name] = v
end

-- Raise `what: needs AMOUNT UNIT, over the limit NAME=VALUE (...)` when amount > the bound.
function limits.check(name, amount, what)
  local v = limits.get(name)
  if amount > v then
    local unit = BOUNDS[name].unit and (' ' .. BOUNDS[name].unit) or ''
    error(string.format('%s: needs %.4g%s, over the limit %s=%.4g (%s; raise it with --limit %s=N)',
      what, amount, unit, name, v, BOUNDS[name].help, name), 0)
  end
end

-- For --help: one line per bound.
function limits.describe()
  local lines = {}
  for _, name in ipairs(limits.names()) do
    local b = BOUNDS[name]
    lines[#lines + 1] = string.format('%s=%g%s: %s', name, b.value, b.unit and (' ' .. b.unit) or '', b.help)
  end
  return table.concat(lines, '; ')
end

return limits
