-- End every session of a user: dropping the index ends them all at once (lua/prelude.lua,
-- alive), including a login racing with this call, since scripts run one at a time. The
-- sessions' own keys shrink to markers, at most `limit` of them (the session cap bounds the
-- index; without a cap, any beyond the limit expire with their refresh tokens).
-- 1 when done, -1 (and nothing changed) when the caller's own session has ended.
-- Arguments by name: flask_dualtoken/scripts.py, RevokeAllArgs.
local index = unpack(KEYS)
local caller, user_prefix, limit = unpack(ARGV)
if caller ~= '' and not alive(index, caller, select(2, clock())) then return -1 end
for _, sid in ipairs(redis.call('ZRANGE', index, 0, tonumber(limit) - 1)) do
  end_session(user_prefix .. 's:' .. sid, user_prefix .. 'r:' .. sid, 'logout_all')
end
redis.call('UNLINK', index)
return 1
