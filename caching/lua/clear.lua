-- The end of clear(), after the namespace's value keys were deleted in batches: tell every
-- process to empty its L1. Returns the sequence.
return announce_write('c')
