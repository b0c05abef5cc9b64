-- Invalidate tags (the fetch face): bump the namespace sequence, remember it per tag (so loads
-- that started earlier are refused by fill.lua), delete every value indexed under the tags, and
-- announce the tags to every process's L1. Cost: O(tags x buckets + min(members, chunk)), no
-- scan: a bucket larger than ARGV[5] members is renamed aside (O(1)) for the caller to delete
-- in bounded chunks (drain_set.lua), so no single call blocks Redis for long.
-- KEYS[1] namespace sequence, KEYS[2..1+n] tag-invalidated keys, KEYS[2+n..] tag index buckets
-- ARGV[1] n, ARGV[2] tag-invalidated ttl (s), ARGV[3] channel, ARGV[4] tags joined by "\n",
-- ARGV[5] chunk size, ARGV[6] prefix of the renamed-aside sets, ARGV[7] "@<commit ms>" or ""
-- Returns {sequence (string), values deleted, subscribers that received the announcement,
--          renamed-aside sets (a table, maybe empty)}
local n = tonumber(ARGV[1])
local seq = next_sequence(KEYS[1])
for i = 2, n + 1 do
  redis.call('SET', KEYS[i], seq, 'EX', ARGV[2])
end
local chunk = tonumber(ARGV[5])
local deleted = 0
local aside = {}
for i = n + 2, #KEYS do
  local count = redis.call('SCARD', KEYS[i])
  if count > chunk then
    local name = ARGV[6] .. seq .. ':' .. (i - n - 1)
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
