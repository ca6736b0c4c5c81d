-- Reserve one login attempt on a counter before any password is checked, in one atomic
-- step: however many logins arrive at once, at most `limit` get a reservation per window.
-- The counter is a hash: '#' the attempts counted (failures and attempts in flight), and
-- for a username counter one field per exact spelling tried ('u:' .. username), so that a
-- success clears only what was tried under its own spelling. The window opens with the
-- first attempt, and the key carries its expiry whatever happens (also one left without).
-- KEYS: counter
-- ARGV: limit, window seconds, field ('' for an address counter)
local key, limit = KEYS[1], tonumber(ARGV[1])
local ttl = redis.call('PTTL', key)
if ttl < 0 then
  redis.call('EXPIRE', key, ARGV[2])
  ttl = tonumber(ARGV[2]) * 1000
end
if tonumber(redis.call('HGET', key, '#') or '0') >= limit then
  return {0, ttl}
end
redis.call('HINCRBY', key, '#', 1)
if ARGV[3] ~= '' then redis.call('HINCRBY', key, ARGV[3], 1) end
return {1, ttl}
