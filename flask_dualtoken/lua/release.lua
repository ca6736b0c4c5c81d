-- Give back one reserved attempt (lua/reserve.lua): the login succeeded, or another
-- counter refused it. Earlier failures stay counted: nobody's success, not even the
-- account owner's, hands a guesser new attempts. Never creates a key, so none is left
-- without its expiry.
-- KEYS: counter
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('DECR', KEYS[1]) <= 0 then redis.call('DEL', KEYS[1]) end
return 1
