-- List a user's live sessions from the index, newest first and at most `limit` of them,
-- pruning dead entries on the way. Session keys are built here from their prefix; they
-- share the index's hash tag, so on a cluster they live in the same slot.
-- {'revoked'} (and nothing listed) when the caller's own session has ended.
-- KEYS: user index
-- ARGV: session key prefix, caller's sid ('' when not acting for a session), limit
local now_s, now_us = clock()
if ARGV[2] ~= '' and not alive(KEYS[1], ARGV[2], now_us) then return {'revoked'} end
local out = {'ok'}
local sids = redis.call('ZREVRANGEBYSCORE', KEYS[1], '+inf', '(' .. fmt(now_us),
  'LIMIT', 0, tonumber(ARGV[3]))
for _, sid in ipairs(sids) do
  local key = ARGV[1] .. sid
  local h = redis.call('HMGET', key, 'created', 'used', 'cur_exp', 'ip', 'revoked')
  if not h[1] or h[5] or now_s >= tonumber(h[3]) then
    redis.call('ZREM', KEYS[1], sid)
  else
    table.insert(out, sid)
    for i = 1, 4 do table.insert(out, h[i]) end
    table.insert(out, get_agent(key))
  end
end
return out
