-- Invalidate tags (the fetch face): bump the namespace sequence, remember it per tag (so loads
-- that started earlier are refused by fill.lua), delete every value indexed under the tags, and
-- announce the tags to every process's L1. Cost: O(tags x buckets + min(members, chunk)), no
-- scan: a bucket larger than ARGV[5] members is renamed aside (O(1)) for the caller to delete
-- in bounded chunks (drain_set.lua), so no single call blocks Redis for long.
-- KEYS[1] namespace sequence, KEYS[2..1+n] tag-invalidated keys, then with a write position
-- (ARGV[8]) KEYS[2+n..1+2n] tag-position keys and KEYS[2+2n] the namespace's write position, then
-- the tag index buckets
-- ARGV[1] n, ARGV[2] tag-invalidated ttl (s), ARGV[3] channel, ARGV[4] tags joined by "\n",
-- ARGV[5] chunk size, ARGV[6] prefix of the renamed-aside sets, ARGV[7] "@<commit ms>" or "",
-- ARGV[8] the database write position this invalidation follows (caching/fence.py) or ""
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
  -- reach Redis out of their commit order), with the same expiry as its sequence mark.
  local position = tonumber(ARGV[8])
  for i = n + 2, 2 * n + 2 do
    local known = redis.call('GET', KEYS[i])
    if not known or tonumber(known) < position then
      redis.call('SET', KEYS[i], ARGV[8], 'EX', ARGV[2])
    end
  end
  first_bucket = 2 * n + 3
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
