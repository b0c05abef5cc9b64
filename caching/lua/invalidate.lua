-- Invalidate tags: bump the global sequence, remember it per tag (so in-flight loads that
-- started earlier are rejected by fill.lua), delete every value indexed under the tags, and
-- broadcast to every process's L1. Cost: O(tags x buckets + deleted values), never a scan.
-- KEYS[1] global sequence, KEYS[2..1+n] tag-invalidated keys, KEYS[2+n..] tag index buckets
-- ARGV[1] n, ARGV[2] tag-invalidated ttl (s), ARGV[3] channel, ARGV[4] tags joined by "\n"
-- Returns {sequence (string), values deleted}
local n = tonumber(ARGV[1])
local seq = redis.call('INCR', KEYS[1])
if seq < 1000000 then
  -- A fresh (or restarted) Redis: seed from the clock so sequences keep growing.
  local t = redis.call('TIME')
  seq = tonumber(t[1]) * 1000000 + tonumber(t[2])
  redis.call('SET', KEYS[1], string.format('%d', seq))
end
local sseq = string.format('%d', seq)
for i = 2, n + 1 do
  redis.call('SET', KEYS[i], sseq, 'EX', ARGV[2])
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
redis.call('PUBLISH', ARGV[3], sseq .. '\n' .. ARGV[4])
return {sseq, deleted}
