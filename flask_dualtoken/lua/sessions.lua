-- List a user's live sessions from the index, newest first and at most `limit` of them,
-- pruning dead entries on the way. Session keys are built here from their prefix; they
-- share the index's hash tag, so on a cluster they live in the same slot.
-- {'revoked'} (and nothing listed) when the caller's own session has ended.
-- Arguments by name: flask_dualtoken/scripts.py, SessionsArgs.
local index = unpack(KEYS)
local session_prefix, caller, limit = unpack(ARGV)
local now_s, now_us = clock()
if caller ~= '' and not alive(index, caller, now_us) then return {'revoked'} end
local out = {'ok'}
local sids = redis.call('ZREVRANGEBYSCORE', index, '+inf', '(' .. fmt(now_us),
  'LIMIT', 0, tonumber(limit))
for _, sid in ipairs(sids) do
  local key = session_prefix .. sid
  local h = redis.call('HMGET', key, 'created', 'used', 'cur_exp', 'ip', 'revoked')
  if not h[1] or h[5] or now_s >= tonumber(h[3]) then
    redis.call('ZREM', index, sid)
  else
    table.insert(out, sid)
    for i = 1, 4 do table.insert(out, h[i]) end
    table.insert(out, get_agent(key))
  end
end
return out
