-- Invalidate tags (the fetch face): bump the namespace sequence, remember it per tag (so loads
-- that started earlier are refused by fill.lua), delete every value indexed under the tags, and
-- announce the tags to every process's L1. Cost: O(tags x buckets + min(members, chunk)), no
-- scan: a bucket larger than ARGV[5] members is renamed aside (O(1)) for the caller to delete
-- in bounded chunks (drain_set.lua), so no single call blocks Redis for long.
-- KEYS[1] namespace sequence, KEYS[2..1+n] tag-invalidated keys, then with a write position
-- (ARGV[8]) KEYS[2+n..1+2n] tag-position keys, KEYS[2+2n] the namespace's write position,
-- KEYS[3+2n] its floor and KEYS[4+2n] its log, then the tag index buckets
-- ARGV[1] n, ARGV[2] tag-invalidated ttl (s), ARGV[3] channel, ARGV[4] tags joined by "\n",
-- ARGV[5] chunk size, ARGV[6] prefix of the renamed-aside sets, ARGV[7] "@<commit ms>" or "",
-- ARGV[8] the database write position this invalidation follows (caching/fence.py) or "",
-- ARGV[9] the log's step (s), or "" not to log the position (an unknown one), ARGV[10] the log's
-- length, ARGV[11] "1": also raise the floor to the position, if the floor is there (a replay of
-- invalidations queued while Redis was unreachable), else ""
-- Returns {sequence (string), values deleted, subscribers that received the announcement,
--          renamed-aside sets (a table, maybe empty)}
local n = tonumber(ARGV[1])
local seq = next_sequence(KEYS[1])
for i = 2, n + 1 do
  redis.call('SET', KEYS[i], seq, 'EX', ARGV[2])
end
local first_bucket = n + 2
if ARGV[8] ~= '' then
  -- Each tag keeps the highest write position it was invalidated after (two invalidations may
  -- reach Redis out of their commit order), with the same expiry as its sequence mark: renewed
  -- by every invalidation, so a mark lives TAG_INVALIDATION_TTL after the tag's last one.
  local position = tonumber(ARGV[8])
  for i = n + 2, 2 * n + 2 do
    local known = redis.call('GET', KEYS[i])
    if not known or tonumber(known) < position then
      redis.call('SET', KEYS[i], ARGV[8], 'EX', ARGV[2])
    else
      redis.call('EXPIRE', KEYS[i], ARGV[2])
    end
  end
  if ARGV[9] ~= '' then
    -- The log (fill.lua reads it when marks may have expired): entries "<created s>:<highest
    -- position so far>", newest first, one per ARGV[9] s at most (the head is updated within
    -- its step), ARGV[10] of them: always one created at least a mark's ttl ago, if any was.
    local now = tonumber(redis.call('TIME')[1])
    local high = ARGV[8]
    local head = redis.call('LINDEX', KEYS[2 * n + 4], 0)
    local at, known = nil, nil
    if head then
      at, known = string.match(head, '^(%d+):(%d+)$')
    end
    if known and tonumber(known) > position then
      high = known
    end
    if at and now - tonumber(at) < tonumber(ARGV[9]) then
      redis.call('LSET', KEYS[2 * n + 4], 0, at .. ':' .. high)
    else
      redis.call('LPUSH', KEYS[2 * n + 4], now .. ':' .. high)
      redis.call('LTRIM', KEYS[2 * n + 4], 0, tonumber(ARGV[10]) - 1)
    end
  end
  if ARGV[11] ~= '' then
    local floor = redis.call('GET', KEYS[2 * n + 3])
    if floor and string.byte(floor, 1) ~= 63 and tonumber(floor) < position then
      redis.call('SET', KEYS[2 * n + 3], ARGV[8])
    end
  end
  first_bucket = 2 * n + 5
end
local chunk = tonumber(ARGV[5])
local deleted = 0
local aside = {}
for i = first_bucket, #KEYS do
  local count = redis.call('SCARD', KEYS[i])
  if count > chunk then
    local name = ARGV[6] .. seq .. ':' .. (i - first_bucket + 1)
    redis.call('RENAME', KEYS[i], name)
    redis.call('EXPIRE', name, 3600)
    aside[#aside + 1] = name
  elseif count > 0 then
    local members = redis.call('SMEMBERS', KEYS[i])
    redis.call('UNLINK', unpack(members))
    redis.call('UNLINK', KEYS[i])
    deleted = deleted + count
  end
end
local receivers = announce(ARGV[3], 'a', seq .. ARGV[7], ARGV[4])
return {seq, deleted, receivers, aside}
