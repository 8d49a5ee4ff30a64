-- Apply a batch of one person's events atomically: dedupe, profile update, log append.
-- Mirrors models/profiles.py operation for operation (a test checks they agree).
--
-- KEYS[1] profile (JSON)   KEYS[2] seen event ids (ZSET, score = time seen)
-- KEYS[3] event log partition (STREAM)   KEYS[4] consent record (HASH, proof of consent)
-- All four share the {pNN} hash tag.
-- ARGV[1] now  ARGV[2] half-life s  ARGV[3] profile TTL s  ARGV[4] log max length
-- ARGV[5] dedupe window s  ARGV[6] visitor id  ARGV[7] JSON array of normalized events
-- Returns one integer per event: 1 applied, 0 duplicate. Consent events here are grants
-- (withdrawals are carried out by withdraw.lua).

local now = tonumber(ARGV[1])
local half_life = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local maxlen = ARGV[4]
local window = tonumber(ARGV[5])
local visitor = ARGV[6]
local events = cjson.decode(ARGV[7])
local SESSION_GAP = 1800
local RECENT_MAX = 10

local raw = redis.call('GET', KEYS[1])
local p = nil
if raw then
  local ok, decoded = pcall(cjson.decode, raw)
  if ok and type(decoded) == 'table' then p = decoded end
end

if p ~= nil and p.alias ~= nil then
  -- this id was linked to a customer: the caller re-applies there
  return {'alias', p.alias}
end

local function empty(ts)
  return {v = 1, first = ts, last = ts, sessions = 0, views = 0, clicks = 0, imps = 0,
          convs = 0, revenue = 0, fb_sum = 0, fb_n = 0, cat = {}, tag = {}, cat_clicks = {},
          recent = {}, var = {}, price_sum = 0, price_n = 0}
end

local filled = false
local function prepare(ts)
  if p == nil then
    p = empty(ts)
    filled = true
  elseif not filled then
    -- once per call: a profile written by an older version may lack fields
    for k, v in pairs(empty(ts)) do
      if p[k] == nil then p[k] = v end
    end
    if type(p.recent) ~= 'table' then p.recent = {} end
    filled = true
  end
  if ts < p.first then p.first = ts end
  if ts > p.last then p.last = ts end
end

local function bump(tbl, key, amount, ts)
  local e = tbl[key]
  if type(e) ~= 'table' or tonumber(e[1]) == nil or tonumber(e[2]) == nil then
    tbl[key] = {amount, ts}
    return
  end
  local score, as_of = tonumber(e[1]), tonumber(e[2])
  if ts >= as_of then
    tbl[key] = {score * 2 ^ (-(ts - as_of) / half_life) + amount, ts}
  else
    tbl[key] = {score + amount * 2 ^ (-(as_of - ts) / half_life), as_of}
  end
end

local function variant(id)
  local e = p.var[id]
  if type(e) ~= 'table' or #e < 3 then
    e = {0, 0, 0}
    p.var[id] = e
  end
  return e
end

local result = {}
local changed = false
for i, ev in ipairs(events) do
  local ts = tonumber(ev.ts)
  if redis.call('ZADD', KEYS[2], 'NX', now, ev.id) == 0 then
    result[i] = 0
  else
    result[i] = 1
    local t = ev.type
    if t == 'view' then
      local had_views = p ~= nil and ((tonumber(p.views) or 0) > 0 or (tonumber(p.sessions) or 0) > 0)
      local previous_last = ts
      if p ~= nil and tonumber(p.last) ~= nil then previous_last = tonumber(p.last) end
      prepare(ts)
      if (not had_views) or ts - previous_last >= SESSION_GAP then p.sessions = p.sessions + 1 end
      p.views = p.views + 1
      if ev.category then
        bump(p.cat, ev.category, 1.0, ts)
        local recent = {ev.category}
        for j = 1, math.min(#p.recent, RECENT_MAX - 1) do recent[j + 1] = p.recent[j] end
        p.recent = recent
      end
      local seen = {}
      for _, tag in ipairs(ev.tags or {}) do
        if not seen[tag] then
          seen[tag] = true
          bump(p.tag, tag, 1.0, ts)
        end
      end
      if ev.price_band then
        p.price_sum = p.price_sum + ev.price_band
        p.price_n = p.price_n + 1
      end
    elseif t == 'impression' then
      prepare(ts)
      p.imps = p.imps + 1
      local e = variant(ev.variant_id)
      e[1] = e[1] + 1
      e[3] = ts
    elseif t == 'click' then
      prepare(ts)
      p.clicks = p.clicks + 1
      local e = variant(ev.variant_id)
      e[2] = e[2] + 1
      if ev.category then
        p.cat_clicks[ev.category] = (tonumber(p.cat_clicks[ev.category]) or 0) + 1
        bump(p.cat, ev.category, 2.0, ts)
      end
    elseif t == 'conversion' then
      prepare(ts)
      p.convs = p.convs + 1
      p.revenue = p.revenue + ev.value
    elseif t == 'feedback' then
      prepare(ts)
      p.fb_sum = p.fb_sum + ev.rating
      p.fb_n = p.fb_n + 1
    end
    if t == 'consent' then
      redis.call('HSET', KEYS[4], 'personalization', ev.personalization and '1' or '0',
                 'analytics', ev.analytics and '1' or '0', 'policy_version', ev.policy_version,
                 'source', ev.source, 'ts', ts, 'recorded', now)
      redis.call('EXPIRE', KEYS[4], ttl)
    else
      changed = true
    end
    redis.call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'v', visitor, 'e', ev.raw)
  end
end

redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)
redis.call('EXPIRE', KEYS[2], math.ceil(window))
if changed and p ~= nil then
  if next(p.recent) == nil then p.recent = nil end
  redis.call('SET', KEYS[1], cjson.encode(p), 'EX', ttl)
elseif raw then
  redis.call('EXPIRE', KEYS[1], ttl)
end
return result
