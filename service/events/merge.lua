-- Merge an anonymous profile into a customer profile, once per link.
-- KEYS[1] customer profile  KEYS[2] customer's seen-ids ZSET  KEYS[3] customer's log partition
-- ARGV[1] now  ARGV[2] half-life s  ARGV[3] TTL s  ARGV[4] log max length
-- ARGV[5] anonymous profile JSON ('' if none)  ARGV[6] link id  ARGV[7] customer profile id
-- ARGV[8] log entry JSON
-- Counts are added, decayed affinities combined at the later time, first = min, last = max.
-- Returns 1 if merged now, 0 if this link was merged before.
local now, half_life, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if redis.call('ZADD', KEYS[2], 'NX', now, ARGV[6]) == 0 then return 0 end
redis.call('EXPIRE', KEYS[2], ttl)
local function load(raw)
  if not raw or raw == '' then return nil end
  local ok, v = pcall(cjson.decode, raw)
  if ok and type(v) == 'table' and v.alias == nil then return v end
  return nil
end
local target = load(redis.call('GET', KEYS[1]))
local source = load(ARGV[5])
if source ~= nil then
  if target == nil then
    target = source
  else
    for _, k in ipairs({'sessions', 'views', 'clicks', 'imps', 'convs', 'revenue', 'fb_sum', 'fb_n',
                        'price_sum', 'price_n'}) do
      target[k] = (tonumber(target[k]) or 0) + (tonumber(source[k]) or 0)
    end
    local source_newer = (tonumber(source.last) or 0) > (tonumber(target.last) or 0)
    target.first = math.min(tonumber(target.first) or now, tonumber(source.first) or now)
    target.last = math.max(tonumber(target.last) or 0, tonumber(source.last) or 0)
    for _, t in ipairs({'cat', 'tag'}) do
      if type(target[t]) ~= 'table' then target[t] = {} end
      for key, e in pairs(type(source[t]) == 'table' and source[t] or {}) do
        local mine = target[t][key]
        if type(mine) ~= 'table' then
          target[t][key] = e
        else
          local s1, t1, s2, t2 = tonumber(mine[1]), tonumber(mine[2]), tonumber(e[1]), tonumber(e[2])
          local at = math.max(t1, t2)
          target[t][key] = {s1 * 2 ^ (-(at - t1) / half_life) + s2 * 2 ^ (-(at - t2) / half_life), at}
        end
      end
    end
    if type(target.cat_clicks) ~= 'table' then target.cat_clicks = {} end
    for key, n in pairs(type(source.cat_clicks) == 'table' and source.cat_clicks or {}) do
      target.cat_clicks[key] = (tonumber(target.cat_clicks[key]) or 0) + n
    end
    if type(target.var) ~= 'table' then target.var = {} end
    for key, e in pairs(type(source.var) == 'table' and source.var or {}) do
      local mine = target.var[key]
      if type(mine) ~= 'table' then
        target.var[key] = e
      else
        target.var[key] = {mine[1] + e[1], mine[2] + e[2], math.max(mine[3], e[3])}
      end
    end
    -- the more recently active side's recent views come first
    local a, b = target.recent or {}, source.recent or {}
    if source_newer then a, b = b, a end
    local merged = {}
    for _, list in ipairs({a, b}) do
      for _, c in ipairs(list) do
        if #merged < 10 then merged[#merged + 1] = c end
      end
    end
    target.recent = merged
  end
end
if target ~= nil then
  if type(target.recent) == 'table' and next(target.recent) == nil then target.recent = nil end
  redis.call('SET', KEYS[1], cjson.encode(target), 'EX', ttl)
end
redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'v', ARGV[7], 'e', ARGV[8])
return 1
