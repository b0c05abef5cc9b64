-- Has Redis gone back in time (restored from an older snapshot, a lagging replica promoted)?
-- Called by a subscriber when it (re)subscribes or reads a backwards sequence, with the highest
-- sequence its process has ever seen (caching/broadcast.py).
-- KEYS[1] namespace sequence, KEYS[2] the namespace's rewind mark, KEYS[3] (on a resubscription)
-- the namespace's epoch: the run_id of the server its data was written under
-- ARGV[1] the caller's high-water mark, ARGV[2] the caller's token, ARGV[3] the mark's ttl (ms),
-- ARGV[4] (with KEYS[3]) this server's run_id. The sequence is a clock (common.lua), so writes
-- made after a restore move it past every mark again: the epoch is what still tells a restored
-- snapshot or a promoted replica (data of another server's lifetime) from a Redis that kept
-- running.
-- Called only when the sequence looks below the mark (the usual check is one MGET there).
-- Returns {0, seq}  nothing to do. An absent sequence is a Redis that restarted empty: it holds
--                   no value to distrust; it is seeded here (above every earlier one)
--         {1, seq}  rewound, and the caller reacts: the sequence is moved past the mark (so the
--                   L1 guards and the next check see time moving forward) and the rewind mark
--                   is set to the caller's token until it has re-applied the invalidations
--         {2, seq}  a reaction is in progress (the mark is set): wait for it
local mark = redis.call('GET', KEYS[2])
local raw = redis.call('GET', KEYS[1])
local foreign = false
if KEYS[3] then
  local epoch = redis.call('GET', KEYS[3])
  if epoch ~= ARGV[4] then
    redis.call('SET', KEYS[3], ARGV[4])
    foreign = epoch and raw and not mark  -- data of another server's lifetime, nobody reacting yet
  end
end
if mark then
  return {2, raw or '0'}
end
if not raw then
  return {0, seed_sequence(KEYS[1])}
end
local high = tonumber(ARGV[1])
if tonumber(raw) >= high and not foreign then
  return {0, raw}
end
local seq = string.format('%d', math.max(high, tonumber(raw)) + 1)
redis.call('SET', KEYS[1], seq)
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return {1, seq}
