-- Store a freshly loaded value unless one of its tags was invalidated after the load started,
-- index it under its tags, and release the caller's lease: the one write of a miss.
-- KEYS[1] value key, KEYS[2] lease key, KEYS[3] namespace sequence, KEYS[4..3+n] tag-invalidated
-- keys, KEYS[4+n..3+2n] tag index bucket sets, then with admission KEYS[4+2n], KEYS[5+2n] the
-- doorkeeper bitmaps of this period and the previous one
-- ARGV[1] the caller's lease: "~<token>" it is in the value key (the read of an absent key
--         took it), "<token>" in the lease key (a refresh), "" none (a bulk fill)
-- ARGV[2] "~" lease: its ttl (ms); otherwise the sequence the load started at
-- ARGV[3] envelope head "<soft ms>|<filled ms>|<cost us>|", ARGV[4] its body (the sequence is
--         written between them here), ARGV[5] ttl (ms), ARGV[6] n, ARGV[7] bucket sets' expiry
--         (unix s), ARGV[8] '' (always store) or the doorkeeper's expiry (unix s), ARGV[9],
--         ARGV[10] the key's bits, ARGV[11] the bitmap's size in bytes ('' for all four without
--         admission), ARGV[12] "~" lease: the highest sequence the caller had seen before its read
--         (any invalidation up to it came before the lease)
-- ARGV[13] absent (the load read the primary) or the lowest replay position of the replicas the
--         load read (caching/fence.py); then KEYS after the doorkeeper's (if any) hold each tag's
--         position key, the namespace's write position, its floor and its log; ARGV[14] a token
--         to claim an absent floor with, ARGV[15] the claim's ttl (ms), ARGV[16] the age (s) a
--         log entry must have to count (TAG_INVALIDATION_TTL)
-- Returns {status, seq, write position, claimed}: status 1 stored, 0 refused (stale set), -1
-- skipped (another process holds the lease, or took ours over), 2 not admitted (first sight of
-- this key: L1 only), 3 behind (a replica that had not replayed a write one of the tags was
-- invalidated after, or the floor is above the read or unknown: nothing stored, the lease is
-- kept for a re-read from the primary); seq the sequence now, written into the envelope (no tag
-- of the value was invalidated after the load started and up to seq), or '0' when the tags were
-- not checked; the namespace's newest write position ('0' when none or not asked); claimed 1
-- when this call found the floor absent and claimed it with ARGV[14] (the caller seeds it:
-- seed_floor.lua), else 0.
local n = tonumber(ARGV[6])
local marks = redis.call('MGET', unpack(KEYS, 3, 3 + n))  -- the sequence, then each tag's mark
local seq = marks[1] or '0'
local newest = '0'
if ARGV[13] then
  -- The fence: only for a fill that read a replica, and before anything else (a lost lease
  -- included: its caller keeps what it loaded in L1 only if this passed). Checked before the
  -- stale-set rule: a value older than a committed write is re-read from the primary even when
  -- the rule would refuse it anyway, so its caller is not answered with it either.
  local base = 3 + 2 * n + (ARGV[8] ~= '' and 2 or 0)
  local read = tonumber(ARGV[13])
  local positions = redis.call('MGET', unpack(KEYS, base + 1, base + n + 2))
  newest = positions[n + 1] or '0'
  -- The floor has no expiry: absent, the tags' marks may have been lost with it (a restart
  -- without persistence, FLUSHDB, eviction), so no replica read is trusted until a process
  -- seeds it with the primary's position of after the loss (>= every lost mark).
  local floor = positions[n + 2]
  if not floor then
    redis.call('SET', KEYS[base + n + 2], '?' .. ARGV[14], 'PX', ARGV[15])
    return {3, seq, newest, 1}
  end
  if string.byte(floor, 1) == 63 or tonumber(floor) > read then  -- '?': being seeded
    return {3, seq, newest, 0}
  end
  for i = 1, n do
    local p = positions[i]
    if p and tonumber(p) > read then
      return {3, seq, newest, 0}
    end
  end
  -- A tag mark expires TAG_INVALIDATION_TTL after its last write: the highest position recorded
  -- in a log entry created at least that long ago (invalidate.lua) covers every expired one.
  local now = tonumber(redis.call('TIME')[1])
  for _, entry in ipairs(redis.call('LRANGE', KEYS[base + n + 3], 0, -1)) do
    local at, high = string.match(entry, '^(%d+):(%d+)$')
    if at and now - tonumber(at) >= tonumber(ARGV[16]) then
      if tonumber(high) > read then
        return {3, seq, newest, 0}
      end
      break
    end
  end
end
local current = redis.call('GET', KEYS[1])
local start
local mine = false
local release = nil
local lease = ARGV[1]
if string.byte(lease, 1) == 126 then
  if current == lease then
    mine = true
    release = KEYS[1]
    -- Taken at (expiry - ttl) ms; the sequence is >= Redis time in us (common.lua), so any
    -- invalidation after the lease has seq >= that * 1000. One in the same ms before it is
    -- told apart only if the caller had seen it (ARGV[12], from before its read); otherwise
    -- refused, harmlessly.
    start = math.max((redis.call('PEXPIRETIME', KEYS[1]) - tonumber(ARGV[2])) * 1000 - 1, tonumber(ARGV[12]))
  elseif current then
    return {-1, '0', newest, 0}  -- our lease expired and another process leased or filled the key since
  else
    -- Our lease expired (a load longer than LEASE_TTL) and nobody took it: when it was taken
    -- is gone with it, so check against ARGV[12], the highest sequence the caller had seen
    -- before its read (taken before the lease: stricter, never laxer).
    start = tonumber(ARGV[12])
  end
else
  start = tonumber(ARGV[2])
  local holder = redis.call('GET', KEYS[2])
  if lease ~= '' and holder == lease then
    mine = true
    release = KEYS[2]
  elseif holder or (lease == '' and is_lease(current)) then
    mine = nil  -- another process loads it: it fills
  end
end
for i = 2, n + 1 do
  local s = marks[i]
  if s and tonumber(s) > start then
    if release then redis.call('DEL', release) end
    return {0, '0', '0', 0}
  end
end
if mine == nil then
  return {-1, seq, newest, 0}
end
if ARGV[8] ~= '' then
  -- Second-hit admission: a key is stored only when a fill of it was seen before, in this
  -- doorkeeper period or the previous one. Two fixed-size bitmaps, whatever the key count.
  local door, previous = KEYS[4 + 2 * n], KEYS[5 + 2 * n]
  local b1, b2 = tonumber(ARGV[9]), tonumber(ARGV[10])
  local seen = (redis.call('GETBIT', door, b1) == 1 and redis.call('GETBIT', door, b2) == 1)
    or (redis.call('GETBIT', previous, b1) == 1 and redis.call('GETBIT', previous, b2) == 1)
  if not seen then
    if redis.call('EXISTS', door) == 0 then
      -- Allocated once at its exact size (SETBIT alone grows a string greedily, to twice that),
      -- expiring at a fixed time: two live bitmaps at most, whatever the traffic.
      redis.call('SETRANGE', door, tonumber(ARGV[11]) - 1, '\0')
      redis.call('EXPIREAT', door, ARGV[8])
    end
    redis.call('SETBIT', door, b1, 1)
    redis.call('SETBIT', door, b2, 1)
    if release then redis.call('DEL', release) end
    return {2, seq, newest, 0}
  end
end
redis.call('SET', KEYS[1], ARGV[3] .. seq .. '|' .. ARGV[4], 'PX', ARGV[5])  -- replaces a "~" lease
for i = 4 + n, 3 + 2 * n do
  if redis.call('SADD', KEYS[i], KEYS[1]) == 1 then  -- else already a member: the set has its expiry
    redis.call('EXPIREAT', KEYS[i], ARGV[7])
  end
end
if release == KEYS[2] then redis.call('DEL', KEYS[2]) end
return {1, seq, newest, 0}
