-- End every session of a user: dropping the index ends them all at once (lua/prelude.lua,
-- alive), including a login racing with this call, since scripts run one at a time. The
-- sessions' own keys shrink to markers, at most `limit` of them (the session cap bounds the
-- index; without a cap, any beyond the limit expire with their refresh tokens).
-- 1 when done, -1 (and nothing changed) when the caller's own session has ended.
-- KEYS: user index
-- ARGV: caller's sid ('' when not acting for a session), the user's key prefix, limit
if ARGV[1] ~= '' and not alive(KEYS[1], ARGV[1], select(2, clock())) then return -1 end
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[3]) - 1)) do
  end_session(ARGV[2] .. 's:' .. sid, ARGV[2] .. 'r:' .. sid, 'logout_all')
end
redis.call('UNLINK', KEYS[1])
return 1
