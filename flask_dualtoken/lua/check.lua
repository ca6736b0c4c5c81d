-- Strict mode: is this session alive? Read-only.
-- KEYS: session hash, user epoch
-- ARGV: uid
local h = redis.call('HMGET', KEYS[1], 'uid', 'revoked', 'epoch')
if not h[1] or h[1] ~= ARGV[1] or h[2] or h[3] ~= epoch(KEYS[2]) then return 0 end
return 1
