-- touch. KEYS[3] value key; ARGV[3] ttl ms (-1: no expiry). Returns {1 if the key exists, seq}.
if redis.call('EXISTS', KEYS[3]) == 0 then return {0, 0} end
local ttl = tonumber(ARGV[3])
local now = now_ms()
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[3], ttl)
else
  redis.call('PERSIST', KEYS[3])
end
index(KEYS[3], ttl, now)
return {1, announce_write('t')}
