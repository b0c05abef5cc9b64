-- Store a freshly loaded value unless one of its tags was invalidated after the load started.
-- KEYS[1] value key, KEYS[2] lease key, KEYS[3..2+n] tag-invalidated keys,
-- KEYS[3+n..2+2n] tag index bucket sets, then with admission KEYS[3+2n], KEYS[4+2n] the
-- doorkeeper bitmaps of this period and the previous one
-- ARGV[1] lease token ("" = loaded without a lease), ARGV[2] sequence at load start,
-- ARGV[3] envelope, ARGV[4] ttl (ms), ARGV[5] n, ARGV[6] bucket sets' expiry (unix seconds),
-- ARGV[7] '' (always store) or the doorkeeper's expiry (unix s), ARGV[8], ARGV[9] the key's
-- bits, ARGV[10] the bitmap's size in bytes
-- Returns 1 stored, 0 rejected (stale set), -1 skipped (another process holds the lease),
--         2 not admitted (first sight of this key: the caller keeps it in L1 only)
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
if ARGV[7] ~= '' then
  -- Second-hit admission: a key is stored only when a fill of it was seen before, in this
  -- doorkeeper period or the previous one. Two fixed-size bitmaps, whatever the key count.
  local door, previous = KEYS[3 + 2 * n], KEYS[4 + 2 * n]
  local b1, b2 = tonumber(ARGV[8]), tonumber(ARGV[9])
  local seen = (redis.call('GETBIT', door, b1) == 1 and redis.call('GETBIT', door, b2) == 1)
    or (redis.call('GETBIT', previous, b1) == 1 and redis.call('GETBIT', previous, b2) == 1)
  if not seen then
    if redis.call('EXISTS', door) == 0 then
      -- Allocated once at its exact size (SETBIT alone grows a string greedily, to twice that),
      -- expiring at a fixed time: two live bitmaps at most, whatever the traffic.
      redis.call('SETRANGE', door, tonumber(ARGV[10]) - 1, '\0')
      redis.call('EXPIREAT', door, ARGV[7])
    end
    redis.call('SETBIT', door, b1, 1)
    redis.call('SETBIT', door, b2, 1)
    if mine then redis.call('DEL', KEYS[2]) end
    return 2
  end
end
redis.call('SET', KEYS[1], ARGV[3], 'PX', ARGV[4])
for i = 3 + n, 2 + 2 * n do
  redis.call('SADD', KEYS[i], KEYS[1])
  redis.call('EXPIREAT', KEYS[i], ARGV[6])
end
if mine then redis.call('DEL', KEYS[2]) end
return 1
