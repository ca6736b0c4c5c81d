-- End every session of a user: dropping the index ends them all at once (lua/prelude.lua,
-- alive), including a login racing with this call, since scripts run one at a time. The
-- reply names at most `limit` of them (the session cap bounds the index; without a cap,
-- any beyond the limit expire with their refresh tokens), whose keys store.py then
-- shrinks to markers with lua/end_sessions.lua.
-- {'ok', sid, ...} when done; {'revoked'} (and nothing changed) when the caller's own
-- session has ended.
-- Arguments by name: flask_dualtoken/scripts.py, RevokeAllArgs.
local index = unpack(KEYS)
local caller, limit, uid, channel = unpack(ARGV)
if caller ~= '' and not alive(index, caller, select(2, clock())) then return {'revoked'} end
local reply = {'ok'}
for _, sid in ipairs(redis.call('ZRANGE', index, 0, tonumber(limit) - 1)) do
  table.insert(reply, sid)
end
if redis.call('UNLINK', index) == 1 then announce(channel, '*', uid) end
return reply
