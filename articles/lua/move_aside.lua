-- Write-behind batches (articles/counters.py): move the pending hash aside under a batch id,
-- unless a previous flush left a batch there (that one is retried first).
-- KEYS[1] pending hash, KEYS[2] moved-aside hash, KEYS[3] batch id; ARGV[1] a new batch id.
-- Returns the batch id to apply, or nil when there is nothing to flush.
local batch = redis.call('GET', KEYS[3])
if batch and redis.call('EXISTS', KEYS[2]) == 1 then return batch end
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('SET', KEYS[3], ARGV[1])
return ARGV[1]
