-- Reserve one login attempt on a counter before any password is checked, in one atomic
-- step: however many logins arrive at once, at most `limit` get one per window. The count
-- is of attempts, failed or in flight; the window opens with the first, and the counter always
-- carries its expiry (one left without by anything else gets it here).
-- Arguments by name: flask_dualtoken/scripts.py, ReserveArgs.
local counter = unpack(KEYS)
local limit, window = unpack(ARGV)
local ttl = redis.call('PTTL', counter)
if ttl < 0 then ttl = -1 end
if tonumber(redis.call('GET', counter) or '0') >= tonumber(limit) then
  if ttl < 0 then
    redis.call('EXPIRE', counter, window)
    ttl = tonumber(window) * 1000
  end
  return {0, ttl}
end
redis.call('INCR', counter)
if ttl < 0 then redis.call('EXPIRE', counter, window) end
return {1, ttl}
