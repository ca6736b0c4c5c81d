-- End every session of a user in O(1): dropping the index ends them all (lua/prelude.lua,
-- alive), including a login racing with this call, since scripts run one at a time.
-- 1 when done, -1 (and nothing changed) when the caller's own session has ended.
-- KEYS: user index
-- ARGV: caller's sid ('' when not acting for a session)
if ARGV[1] ~= '' and not alive(KEYS[1], ARGV[1], select(2, clock())) then return -1 end
redis.call('UNLINK', KEYS[1])
return 1
