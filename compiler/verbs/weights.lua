-- foldc weights: list the tensors of a weights file (safetensors or a torch.save checkpoint), or
-- with --diff MODEL, how they differ from what a zoo model expects: missing, unexpected and
-- misshapen keys, with near-miss suggestions for renamed keys. Exit status 1 when they differ.
-- Names come from the file: they are printed escaped (weights.printable), padded by hand (any length).
local cli = require 'cli'
local printable = require('weights').printable

local DTYPE_SIZE = { F64 = 8, F32 = 4, F16 = 2, BF16 = 2, I64 = 8, I32 = 4, I16 = 2, I8 = 1,
                     U64 = 8, U32 = 4, U16 = 2, U8 = 1, BOOL = 1 }

local shape_str = require('tensor').shape_str

local function bytes_str(n)
  if n >= 2 ^ 30 then return string.format('%.2f GiB', n / 2 ^ 30) end
  if n >= 2 ^ 20 then return string.format('%.2f MiB', n / 2 ^ 20) end
  if n >= 2 ^ 10 then return string.format('%.1f KiB', n / 2 ^ 10) end
  return n .. ' B'
end

-- Levenshtein distance, two rows.
local function distance(a, b)
  local prev, cur = {}, {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    cur[0] = i
    local ai = a:byte(i)
    for j = 1, #b do
      local cost = ai == b:byte(j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev, cur = cur, prev
  end
  return prev[#b]
end

-- Columns as wide as their widest cell (in characters: UTF-8 continuation bytes take no column);
-- right-aligned where right[i].
local function print_table(rows, right)
  local function width(s) return #s - select(2, s:gsub('[\128-\191]', '')) end
  local widths = {}
  for _, row in ipairs(rows) do
    for i, cell in ipairs(row) do widths[i] = math.max(widths[i] or 0, width(cell)) end
  end
  for _, row in ipairs(rows) do
    local cells = {}
    for i, cell in ipairs(row) do
      local pad = string.rep(' ', widths[i] - width(cell))
      cells[i] = right[i] and pad .. cell or (i < #row and cell .. pad or cell)
    end
    print(table.concat(cells, '  '))
  end
end

local function list(path, w)
  local rows = { { 'name', 'dtype', 'shape', 'bytes' } }
  local total_bytes, total_numel, by_dtype, order = 0, 0, {}, {}
  for _, name in ipairs(w.names) do
    local t = w.tensors[name]
    local nbytes = t.numel * (DTYPE_SIZE[t.dtype] or 4)
    local row = { printable(name), t.dtype or 'F32', shape_str(t.shape), string.format('%.0f', nbytes) }
    rows[#rows + 1] = row
    total_bytes, total_numel = total_bytes + nbytes, total_numel + t.numel
    if not by_dtype[row[2]] then by_dtype[row[2]] = 0; order[#order + 1] = row[2] end
    by_dtype[row[2]] = by_dtype[row[2]] + 1
  end
  print_table(rows, { false, false, false, true })
  local counts = {}
  for _, d in ipairs(order) do counts[#counts + 1] = d .. ' ' .. by_dtype[d] end
  print(string.format('%s: %d tensors (%s), %s elements, %s%s', path, #w.names, table.concat(counts, ', '),
    cli.human(total_numel), bytes_str(total_bytes), w.format and (', torch.save ' .. w.format .. ' format') or ''))
  return 0
end

local function diff(path, w, model)
  local zoo = require 'zoo'
  local entry = zoo.resolve(model)
  -- the shapes the checkpoint determines (classes, image size) as build takes them
  local notes = require('pipeline').from_weights(entry, w, path)
  local graph = zoo.trace(entry)
  -- a re-parameterised family: against the form (training or deploy) most of the keys belong to
  if entry.config.has_deploy_form then graph = require('pipeline').form_for(entry, graph, w) end
  local missing, unexpected, wrong = require('bind').compare(graph, w)
  local n_required = 0
  for _, spec in ipairs(graph.param_specs) do
    if not spec.optional then n_required = n_required + 1 end
  end
  print(string.format('%s (%d tensors) against %s%s (%d expected, %d more optional)', path, #w.names, entry.name,
    graph.form == 'deploy' and ' (deploy form)' or '', n_required, #graph.param_specs - n_required))
  for _, line in ipairs(notes) do print('  ' .. line) end
  if #missing + #wrong + #unexpected == 0 then
    print('match: every key present with the expected shape')
    return 0
  end
  -- a consistent extra or missing prefix ('backbone.', 'model.') explains many renamings at once
  local prefixes, best_prefix, best_count = {}, nil, 0
  for _, spec in ipairs(missing) do
    for _, u in ipairs(unexpected) do
      local p
      if #u > #spec.key and u:sub(-#spec.key - 1) == '.' .. spec.key then
        p = "unexpected keys have an extra prefix '" .. printable(u:sub(1, #u - #spec.key)) .. "'"
      elseif #spec.key > #u and spec.key:sub(-#u - 1) == '.' .. u then
        p = "unexpected keys lack the prefix '" .. spec.key:sub(1, #spec.key - #u) .. "'"
      end
      if p then
        prefixes[p] = (prefixes[p] or 0) + 1
        if prefixes[p] > best_count then best_prefix, best_count = p, prefixes[p] end
      end
    end
  end
  if #missing > 0 then
    print(string.format('missing (%d):', #missing))
    for _, spec in ipairs(missing) do
      local best, best_d
      local want = shape_str(spec.shape)
      local leaf = spec.key:match('[^.]*$')
      for _, u in ipairs(unexpected) do
        -- a renamed module keeps its parameters' names (weight, running_mean, ...) and shapes
        if shape_str(w.tensors[u].shape) == want and u:match('[^.]*$') == leaf then
          local d = distance(spec.key, u)
          if not best_d or d < best_d then best, best_d = u, d end
        end
      end
      local hint = ''
      if best and best_d <= math.max(3, math.floor(0.5 * math.max(#spec.key, #best))) then
        hint = string.format("   maybe '%s' (same shape)", printable(best))
      end
      print(string.format('  %s [%s]%s', spec.key, want, hint))
    end
  end
  if #unexpected > 0 then
    print(string.format('unexpected (%d):', #unexpected))
    for _, u in ipairs(unexpected) do print(string.format('  %s [%s]', printable(u), shape_str(w.tensors[u].shape))) end
  end
  if #wrong > 0 then
    print(string.format('wrong shape or type (%d):', #wrong))
    for _, line in ipairs(wrong) do print('  ' .. line) end
  end
  if best_prefix and best_count >= 2 then
    print(string.format('note: %s (%d keys)', best_prefix, best_count))
  end
  return 1
end

return {
  list = list, -- list(path, w): the listing, for tests that already hold the loaded weights
  help = 'List the tensors of a weights file (.safetensors or torch.save .pth), or --diff it against a model.',
  define = function(c)
    c:argument('file', 'Weights: .safetensors, or a torch.save checkpoint (.pth/.pt/.bin/.ckpt, zip or legacy).')
    c:option('--diff', 'Zoo name or FILE.lua[:CONFIG]: show missing, unexpected and misshapen keys (exit 1 if any).')
      :argname('<model>')
    cli.limit_arg(c)
  end,
  run = function(a)
    local w = require('weights').load(a.file)
    if a.diff then return diff(a.file, w, a.diff) end
    return list(a.file, w)
  end,
}
