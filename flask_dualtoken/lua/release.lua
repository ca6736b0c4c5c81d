-- Give back what reservations counted (lua/reserve.lua). After a successful login a
-- username counter forgets every attempt made under the spelling that logged in (proof
-- that the password is known), and only those; otherwise (an address counter, or an
-- attempt that another counter refused) just this one attempt is given back. Never
-- creates a key, so nothing is left without its expiry.
-- KEYS: counter
-- ARGV: field ('' for an address counter), 'all' or 'one'
local key, field = KEYS[1], ARGV[1]
if redis.call('EXISTS', key) == 0 then return 0 end
local by = 1
if field ~= '' then
  local mine = tonumber(redis.call('HGET', key, field) or '0')
  if ARGV[2] == 'all' or mine <= 1 then
    by = mine
    redis.call('HDEL', key, field)
  else
    redis.call('HINCRBY', key, field, -1)
  end
end
if by > 0 and redis.call('HINCRBY', key, '#', -by) <= 0 then
  redis.call('DEL', key)
end
return by
