-- The numeric options of the command line (--threads, --runs, --rounds, --minutes, --seed):
-- argparse converters that accept only a plain decimal in the option's range and refuse anything
-- else with one line naming the option, the value given and the range.
local sys = require 'sys'

local numeric_args = {}

-- The most threads a bundle context runs on (FOLDC_MAX_THREADS, runtime/foldc_runtime.h).
numeric_args.MAX_THREADS = 256

local function refuse(name, s, want)
  return nil, string.format("%s '%s': expected %s", name, (s:gsub('[^\32-\126]', '?')), want)
end

-- An integer from lo to hi (digits only).
function numeric_args.integer(name, lo, hi)
  return function(s)
    local v = s:match('^%d+$') and tonumber(s)
    if v and v >= lo and v <= hi then return v end
    return refuse(name, s, string.format('an integer from %d to %d', lo, hi))
  end
end

-- A number above 0 and at most hi (a plain decimal: digits and one point).
function numeric_args.positive(name, hi)
  return function(s)
    local v = s:match('^%d*%.?%d*$') and s:match('%d') and tonumber(s)
    if v and v > 0 and v <= hi then return v end
    return refuse(name, s, string.format('a number above 0 and at most %g', hi))
  end
end

-- A thread count from 0 to MAX_THREADS, 0 meaning one per core (as the bundle's create_threads).
function numeric_args.threads(name)
  local integer = numeric_args.integer(name, 0, numeric_args.MAX_THREADS)
  return function(s)
    local v, err = integer(s)
    if v == 0 then v = math.min(sys.nproc(), numeric_args.MAX_THREADS) end
    return v, err
  end
end

return numeric_args
