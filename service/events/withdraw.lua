-- Withdraw one id's consent: delete what is stored for it and record the withdrawal.
-- KEYS[1] profile  KEYS[2] seen event ids  KEYS[3] consent record (all one {pNN} slot)
-- ARGV[1] record TTL s  ARGV[2] analytics '1'/'0'  ARGV[3] policy version  ARGV[4] source
-- ARGV[5] event time  ARGV[6] now
-- Returns the customer profile id the profile was an alias of (the caller follows it), or false.
local alias = false
local raw = redis.call('GET', KEYS[1])
if raw then
  local ok, doc = pcall(cjson.decode, raw)
  if ok and type(doc) == 'table' and type(doc.alias) == 'string' then alias = doc.alias end
end
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('HSET', KEYS[3], 'personalization', '0', 'analytics', ARGV[2],
           'policy_version', ARGV[3], 'source', ARGV[4], 'ts', ARGV[5], 'recorded', ARGV[6])
redis.call('EXPIRE', KEYS[3], ARGV[1])
return alias
