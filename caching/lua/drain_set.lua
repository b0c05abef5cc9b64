-- Delete up to ARGV[1] members of the set KEYS[1] (the values of an invalidated tag bucket that
-- invalidate.lua renamed aside) and the set itself once empty. Returns how many were deleted.
local members = redis.call('SPOP', KEYS[1], ARGV[1])
if #members > 0 then
  redis.call('UNLINK', unpack(members))
end
return #members
