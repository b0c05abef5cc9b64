-- set / add / set_many. KEYS[3..] value keys; ARGV[3] ttl ms (-1: no expiry), ARGV[4] '1' for
-- NX (add), ARGV[5..] the payloads, one per value key. Returns {stored count, sequence}.
local ttl = tonumber(ARGV[3])
local now = now_ms()
local stored = 0
for i = 3, #KEYS do
  local ok
  if ttl > 0 then
    if ARGV[4] == '1' then
      ok = redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ttl, 'NX')
    else
      ok = redis.call('SET', KEYS[i], ARGV[i + 2], 'PX', ttl)
    end
  else
    if ARGV[4] == '1' then
      ok = redis.call('SET', KEYS[i], ARGV[i + 2], 'NX')
    else
      ok = redis.call('SET', KEYS[i], ARGV[i + 2])
    end
  end
  if ok then
    stored = stored + 1
    index(KEYS[i], ttl, now)
  end
end
trim(now)
if stored == 0 then return {0, 0} end
return {stored, announce_write('t')}
