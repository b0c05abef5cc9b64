-- A counted read (articles/counters.py): once per client and article within a window.
-- KEYS[1] the seen key of (article, client), KEYS[2] pending hash, KEYS[3] trending scores.
-- ARGV[1] article id, ARGV[2] trending weight, ARGV[3] window seconds (0: every read counts),
-- ARGV[4] the scores' TTL. Returns 1 when counted, 0 when the client's read was counted already.
if tonumber(ARGV[3]) > 0 and not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[3]) then
  return 0
end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('ZINCRBY', KEYS[3], ARGV[2], ARGV[1])
redis.call('EXPIRE', KEYS[3], ARGV[4])
return 1
