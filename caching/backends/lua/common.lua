-- Prepended to every write script of the Django cache backend (caching/backends/tiered.py).
-- KEYS[1] the namespace index (sorted set: value key -> expiry in ms, +inf for none)
-- KEYS[2] the namespace write sequence
-- ARGV[1] pub/sub channel ('' = no L1 may hold these keys: do not announce)
-- ARGV[2] JSON array of the L1 keys to invalidate everywhere (the value keys)
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Remember a value key with its expiry so clear() finds it (never KEYS/SCAN), and forget the
-- keys that expired by themselves: O(log N + expired), amortised O(log N) per write.
local function index(key, ttl_ms, now)
  if ttl_ms > 0 then
    redis.call('ZADD', KEYS[1], now + ttl_ms, key)
  else
    redis.call('ZADD', KEYS[1], '+inf', key)
  end
end

local function trim(now)
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. now)
end

-- Bump the sequence and tell every process to drop these keys from its L1. Returns the
-- sequence (0 when not announced). Seeded from TIME (us) so it keeps growing across a restart
-- of a Redis without persistence (L1 keeps the highest sequence it saw per key).
local function announce(kind, body)
  if ARGV[1] == '' then return 0 end
  local seq = redis.call('INCR', KEYS[2])
  if seq < 1000000 then
    local t = redis.call('TIME')
    seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
    redis.call('SET', KEYS[2], string.format('%d', seq))
  end
  local sseq = string.format('%d', seq)
  redis.call('PUBLISH', ARGV[1], kind .. sseq .. body)
  return seq
end
