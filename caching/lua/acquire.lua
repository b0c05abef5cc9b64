-- Take the load lease of a key, unless the value changed since the caller looked.
-- KEYS[1] value key, KEYS[2] lease key, KEYS[3] global invalidation sequence
-- ARGV[1] lease token, ARGV[2] lease ttl (ms), ARGV[3] fill time the caller saw ("" = none)
-- Returns {2, envelope}  somebody filled the key meanwhile: use it
--         {1, seq}       lease taken; seq = sequence at the start of the load
--         {0, seq}       another process holds the lease
local v = redis.call('GET', KEYS[1])
if v then
  local filled = string.match(v, '^%d+|(%d+)|')
  if filled ~= ARGV[3] then
    return {2, v}
  end
end
local seq = redis.call('GET', KEYS[3]) or '0'
if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return {1, seq}
end
return {0, seq}
