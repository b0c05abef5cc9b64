-- Take the refresh lease of a key whose value the caller holds stale (or is refreshing early,
-- XFetch), unless the value changed since the caller looked. (An absent key is leased by the
-- read itself: the fetch face's SET NX GET puts a lease into the value key.)
-- KEYS[1] value key, KEYS[2] lease key, KEYS[3] global invalidation sequence
-- ARGV[1] lease token, ARGV[2] lease ttl (ms), ARGV[3] fill time the caller saw
-- Returns {2, envelope}  somebody filled the key meanwhile: use it
--         {1, seq}       lease taken; seq = sequence at the start of the load
--         {0, seq}       another process holds the lease (of this key, or of its value key)
local v = redis.call('GET', KEYS[1])
local seq = redis.call('GET', KEYS[3]) or '0'
if is_lease(v) then
  return {0, seq}
end
if v then
  local filled = string.match(v, '^%d+|(%d+)|')
  if filled ~= ARGV[3] then
    return {2, v}
  end
end
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, seq}
end
return {0, seq}
