-- Prepended to every script of this folder (caching/l2.py loads them): helpers only.

local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- Set a namespace's invalidation sequence to TIME (us), the seed of a Redis that starts empty.
-- Returns it as a string.
local function seed_sequence(seq_key)
  local t = redis.call('TIME')
  local seq = string.format('%d', tonumber(t[1]) * 1000000 + tonumber(t[2]))
  redis.call('SET', seq_key, seq)
  return seq
end

-- Bump a namespace's invalidation sequence and return it as a string. A hybrid logical clock:
-- max(previous + 1, Redis TIME in microseconds). It only grows (an L1 compares sequences to
-- refuse fills overtaken by an invalidation), keeps growing across a restart of a Redis without
-- persistence, and is comparable with Redis time: fill.lua refuses a value-key lease's fill
-- when a tag's sequence is >= the time (us) the lease was taken.
local function next_sequence(seq_key)
  local t = redis.call('TIME')
  local seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
  local previous = tonumber(redis.call('GET', seq_key) or '0')
  if previous >= seq then
    seq = previous + 1
  end
  seq = string.format('%d', seq)
  redis.call('SET', seq_key, seq)
  return seq
end

-- A value key holding a load lease instead of a value (the fetch face's SET NX GET read of an
-- absent key): "~" + token. Envelopes start with a digit.
local function is_lease(v)
  return v and string.byte(v, 1) == 126
end

-- The one message grammar of the invalidation channel (caching/broadcast.py parses it):
--   "t<sequence>\n<item>\n<item>..."  drop the L1 entries of each item (a tag, or an exact key)
--   "a<sequence>[@<commit ms>]\n<item>..."  the same, then acknowledge (the writer waits for
--                                      it); with the write's commit time when it has one
--   "c<sequence>"                      empty L1
-- Returns how many subscribers received it.
local function announce(channel, kind, seq, items)
  if items == nil or items == '' then
    return redis.call('PUBLISH', channel, kind .. seq)
  end
  return redis.call('PUBLISH', channel, kind .. seq .. '\n' .. items)
end

-- The key-value face (caching/backends/tiered.py) calls its write scripts with
--   KEYS[1] the namespace index (sorted set: value key -> expiry ms, +inf for none)
--   KEYS[2] the namespace sequence
--   ARGV[1] the channel ('' = no L1 may hold these keys: nothing to announce)
--   ARGV[2] the L1 keys the write touched, joined by "\n"
-- announce_write bumps the sequence and tells every process; returns the sequence or 0.
local function announce_write(kind)
  if ARGV[1] == '' then return 0 end
  local seq = next_sequence(KEYS[2])
  announce(ARGV[1], kind, seq, ARGV[2])
  return seq
end

-- Remember a value key with its expiry so clear() finds it (never KEYS/SCAN), and forget the
-- keys that expired by themselves: amortised O(log N) per write.
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
