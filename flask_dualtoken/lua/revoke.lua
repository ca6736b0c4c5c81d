-- End one session (logout, user gone, admin action). Idempotent; 1 if it was alive.
-- KEYS: session hash, user index, user epoch, replay key of the session
-- ARGV: uid, sid, reason
local h = redis.call('HMGET', KEYS[1], 'uid', 'revoked', 'epoch')
if not h[1] or h[1] ~= ARGV[1] then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
if h[2] then return 0 end
if h[3] ~= epoch(KEYS[3]) then
  redis.call('ZREM', KEYS[2], ARGV[2])
  return 0
end
revoke(KEYS[1], KEYS[2], KEYS[4], ARGV[2], ARGV[3])
return 1
