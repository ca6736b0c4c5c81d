-- Reserve one login attempt on a counter before any password is checked, in one atomic
-- step: however many logins arrive at once, at most `limit` get one per window. The count
-- is of attempts, failed or in flight; the window opens with the first, and the key always
-- carries its expiry (one left without by anything else gets it here).
-- KEYS: counter
-- ARGV: limit, window seconds
local key = KEYS[1]
local ttl = redis.call('PTTL', key)
if ttl < 0 then ttl = -1 end
if tonumber(redis.call('GET', key) or '0') >= tonumber(ARGV[1]) then
  if ttl < 0 then
    redis.call('EXPIRE', key, ARGV[2])
    ttl = tonumber(ARGV[2]) * 1000
  end
  return {0, ttl}
end
redis.call('INCR', key)
if ttl < 0 then redis.call('EXPIRE', key, ARGV[2]) end
return {1, ttl}
