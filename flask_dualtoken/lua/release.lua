-- Give back one reserved attempt (lua/reserve.lua): the login succeeded, or another
-- counter refused it. Earlier failures stay counted: nobody's success, not even the
-- account owner's, hands a guesser new attempts. Never creates a counter, so none is left
-- without its expiry.
-- Arguments by name: flask_dualtoken/scripts.py, ReleaseArgs.
local counter = unpack(KEYS)
if redis.call('EXISTS', counter) == 0 then return 0 end
if redis.call('DECR', counter) <= 0 then redis.call('DEL', counter) end
return 1
