-- End one session (logout, user gone, admin action). Idempotent.
-- 1 if it was alive, 0 if not, -1 (and nothing changed) when the caller's own session has
-- ended: an ended session's access token manages nothing.
-- Arguments by name: flask_dualtoken/scripts.py, RevokeArgs.
local session, index, replay = unpack(KEYS)
local uid, sid, reason, caller, channel = unpack(ARGV)
local _, now_us = clock()
if caller ~= '' and not alive(index, caller, now_us) then return -1 end
local h = redis.call('HMGET', session, 'uid', 'revoked')
if not h[1] or h[1] ~= uid or h[2] or not alive(index, sid, now_us) then
  redis.call('ZREM', index, sid)
  return 0
end
revoke(session, index, replay, sid, reason)
announce(channel, sid, uid)
return 1
