-- End every session of a user in O(1): a new epoch, and a fresh index.
-- KEYS: user index, user epoch
-- ARGV: max_age, margin
local new = redis.call('INCR', KEYS[2])
redis.call('EXPIRE', KEYS[2], fmt(tonumber(ARGV[1]) + tonumber(ARGV[2])))
redis.call('UNLINK', KEYS[1])
return new
