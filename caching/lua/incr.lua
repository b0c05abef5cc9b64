-- incr / decr. KEYS[3] value key; ARGV[3] delta. The value keeps its TTL (INCRBY does).
-- Returns {0} missing, {2, error} not an integer, {1, new value, sequence}.
if redis.call('EXISTS', KEYS[3]) == 0 then return {0} end
local value = redis.pcall('INCRBY', KEYS[3], ARGV[3])
if type(value) == 'table' and value.err then return {2, value.err} end
return {1, value, announce_write('t')}
