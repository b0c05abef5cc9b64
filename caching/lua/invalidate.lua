-- Invalidate tags (the fetch face): bump the namespace sequence, remember it per tag (so loads
-- that started earlier are refused by fill.lua), delete every value indexed under the tags, and
-- announce the tags to every process's L1. Cost: O(tags x buckets + deleted values), no scan.
-- KEYS[1] namespace sequence, KEYS[2..1+n] tag-invalidated keys, KEYS[2+n..] tag index buckets
-- ARGV[1] n, ARGV[2] tag-invalidated ttl (s), ARGV[3] channel, ARGV[4] tags joined by "\n"
-- Returns {sequence (string), values deleted, subscribers that received the announcement}
local n = tonumber(ARGV[1])
local seq = next_sequence(KEYS[1])
for i = 2, n + 1 do
  redis.call('SET', KEYS[i], seq, 'EX', ARGV[2])
end
local deleted = 0
for i = n + 2, #KEYS do
  local members = redis.call('SMEMBERS', KEYS[i])
  local count = #members
  if count > 0 then
    for j = 1, count, 500 do
      redis.call('UNLINK', unpack(members, j, math.min(j + 499, count)))
    end
    redis.call('UNLINK', KEYS[i])
    deleted = deleted + count
  end
end
local receivers = announce(ARGV[3], 'a', seq, ARGV[4])
return {seq, deleted, receivers}
