-- Store a freshly loaded value unless one of its tags was invalidated after the load started.
-- KEYS[1] value key, KEYS[2] lease key, KEYS[3..2+n] tag-invalidated keys,
-- KEYS[3+n..2+2n] tag index bucket sets
-- ARGV[1] lease token ("" = loaded without a lease), ARGV[2] sequence at load start,
-- ARGV[3] envelope, ARGV[4] ttl (ms), ARGV[5] n, ARGV[6] bucket sets' expiry (unix seconds)
-- Returns 1 stored, 0 rejected (stale set), -1 skipped (another process holds the lease)
local n = tonumber(ARGV[5])
local holder = redis.call('GET', KEYS[2])
local mine = holder and holder == ARGV[1]
local start = tonumber(ARGV[2])
for i = 3, 2 + n do
  local s = redis.call('GET', KEYS[i])
  if s and tonumber(s) > start then
    if mine then redis.call('DEL', KEYS[2]) end
    return 0
  end
end
if holder and not mine then
  return -1
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
for i = 3 + n, 2 + 2 * n do
  redis.call('SADD', KEYS[i], KEYS[1])
  redis.call('EXPIREAT', KEYS[i], ARGV[6])
end
if mine then redis.call('DEL', KEYS[2]) end
return 1
