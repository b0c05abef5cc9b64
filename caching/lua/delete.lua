-- delete / delete_many / set with a timeout <= 0. KEYS[3..] value keys.
-- Returns {keys deleted, sequence}. Announced even when nothing was deleted: an L1 elsewhere
-- may still hold a key that left Redis some other way.
local deleted = redis.call('DEL', unpack(KEYS, 3))
redis.call('ZREM', KEYS[1], unpack(KEYS, 3))
return {deleted, announce_write('t')}
