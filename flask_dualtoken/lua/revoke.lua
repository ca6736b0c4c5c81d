-- End one session (logout, user gone, admin action). Idempotent.
-- 1 if it was alive, 0 if not, -1 (and nothing changed) when the caller's own session has
-- ended: an ended session's access token manages nothing.
-- KEYS: session hash, user index, replay key of the session
-- ARGV: uid, sid, reason, caller's sid ('' when not acting for a session)
local _, now_us = clock()
if ARGV[4] ~= '' and not alive(KEYS[2], ARGV[4], now_us) then return -1 end
local h = redis.call('HMGET', KEYS[1], 'uid', 'revoked')
if not h[1] or h[1] ~= ARGV[1] or h[2] or not alive(KEYS[2], ARGV[2], now_us) then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
revoke(KEYS[1], KEYS[2], KEYS[3], ARGV[2], ARGV[3])
return 1
