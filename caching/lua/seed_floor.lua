-- Seed the namespace's write-position floor claimed by fill.lua (caching/fence.py).
-- KEYS[1] the floor, ARGV[1] the claim's token, ARGV[2] the primary's write position, read
-- after the claim was taken (so >= every write whose tag marks the Redis that lost the floor held)
-- Returns 1 seeded (no expiry), 0 not ours any more (the claim expired, or Redis lost it again:
-- a later fill claims it again, and its position is read after that loss).
if redis.call('GET', KEYS[1]) == '?' .. ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2])
  return 1
end
return 0
