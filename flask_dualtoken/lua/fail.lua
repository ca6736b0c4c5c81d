-- Count one failed login in a fixed window that starts with the first failure.
-- KEYS: counter
-- ARGV: window seconds
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
return n
