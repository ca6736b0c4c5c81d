-- List a user's live sessions among those the caller read from the index (newest first)
-- and declared, pruning dead entries on the way. {'revoked'} (and nothing listed) when the
-- caller's own session has ended.
-- Arguments by name: flask_dualtoken/scripts.py, SessionsArgs.
local index = unpack(KEYS)
local caller, sids = unpack(ARGV)
local now_s, now_us = clock()
if caller ~= '' and not alive(index, caller, now_us) then return {'revoked'} end
local out = {'ok'}
for _, s in ipairs(declared_sessions(2, sids)) do
  local sid, key = s[1], s[2]
  local h = redis.call('HMGET', key, 'created', 'used', 'cur_exp', 'ip', 'revoked')
  if not alive(index, sid, now_us) or not h[1] or h[5] or now_s >= tonumber(h[3]) then
    redis.call('ZREM', index, sid)
  else
    table.insert(out, sid)
    for i = 1, 4 do table.insert(out, h[i]) end
    table.insert(out, get_agent(key))
  end
end
return out
