-- A sensitive action (`fresh=`, DUALTOKEN_SESSION_ADMIN_FRESH) by a session of a user
-- whose credentials changed: a recent login proves the person, not that the password they
-- proved is still the user's. The session is compared with the user's security stamp as
-- at a reissue (lua/prelude.lua, compare_stamp), and ends here when it recorded another.
-- 1: alive and current; 0: ended already; -1: ended now (credentials_changed).
-- Arguments by name: flask_dualtoken/scripts.py, CheckStampArgs.
local session, index, replay = unpack(KEYS)
local uid, sid, stamps, channel = unpack(ARGV)
local _, now_us = clock()
if not alive(index, sid, now_us) then return 0 end
local h = redis.call('HMGET', session, 'uid', 'revoked', 'stamp', 'stamp_was', 'stamp_until')
if h[1] ~= uid or h[2] then return 0 end
if compare_stamp(stamps, h[3], h[4], h[5], now_us) == 'changed' then
  revoke(session, index, replay, sid, 'credentials_changed')
  announce(channel, sid, uid)
  return -1
end
return 1
