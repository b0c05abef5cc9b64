-- get / get_many of keys an L1 may hold: each value with its remaining TTL (ms; -1 none, -2
-- missing), so the L1 copy never outlives the Redis value. Returns {v1, ttl1, v2, ttl2, ...}.
local out = {}
for i = 1, #KEYS do
  out[#out + 1] = redis.call('GET', KEYS[i])
  out[#out + 1] = redis.call('PTTL', KEYS[i])
end
return out
