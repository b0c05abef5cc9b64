-- Write-behind batches: drop the moved-aside hash and its batch id only if it is still the
-- batch the caller applied. KEYS[1] moved-aside hash, KEYS[2] batch id; ARGV[1] batch id.
-- Returns 1 dropped, 0 another batch is there.
if redis.call('GET', KEYS[2]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  return 1
end
return 0
