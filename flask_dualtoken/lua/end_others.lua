-- After a user's credentials changed (a new password): end every session of theirs but
-- the one kept, and give that one the new security stamp, in one atomic step (a session
-- left with the old stamp would end at its next reissue: lua/rotate.lua). `keep` is its
-- id, declared with its keys (lua/prelude.lua, declared_sessions), or '' to keep none.
-- Every other session leaves the index, which ends it, and is announced by id; when there
-- are more than `limit` (possible only without a session cap), as all of the user's.
-- {kept (1 or 0), how many ended, sid...}: at most `limit` ids, whose keys store.py then
-- shrinks to markers with lua/end_sessions.lua.
-- The kept session's reissues already under way loaded the user before the change: for
-- `handover_us`, lua/rotate.lua still accepts the stamp it had on it ('stamp_was').
-- Arguments by name: flask_dualtoken/scripts.py, EndOthersArgs.
local index = unpack(KEYS)
local uid, keep, stamp, limit, channel, handover_us = unpack(ARGV)
local _, now_us = clock()
limit = tonumber(limit)
-- Entries past their end are lapsed sessions, not live ones: dropped, not counted.
redis.call('ZREMRANGEBYSCORE', index, '-inf', fmt(now_us))
local kept = 0
for _, s in ipairs(declared_sessions(2, keep)) do
  local h = redis.call('HMGET', s[2], 'uid', 'revoked')
  if h[1] == uid and not h[2] and alive(index, s[1], now_us) then
    kept = 1
    local was = redis.call('HGET', s[2], 'stamp')
    if stamp ~= '' and was and was ~= '' and was ~= stamp then
      redis.call('HSET', s[2], 'stamp', stamp, 'stamp_was', was,
        'stamp_until', fmt(now_us + tonumber(handover_us)))
    elseif stamp ~= '' then
      redis.call('HSET', s[2], 'stamp', stamp)
    end
  end
end
local count = redis.call('ZCARD', index) - kept
local reply = {kept, count}
if count == 0 then return reply end
local ended = {}
for _, sid in ipairs(redis.call('ZRANGE', index, 0, limit)) do
  if (kept == 0 or sid ~= keep) and #ended < limit then
    table.insert(ended, sid)
    table.insert(reply, sid)
  end
end
if kept == 1 then
  -- Everything but the kept session, on both sides of it.
  local rank = redis.call('ZRANK', index, keep)
  redis.call('ZREMRANGEBYRANK', index, rank + 1, -1)
  if rank > 0 then redis.call('ZREMRANGEBYRANK', index, 0, rank - 1) end
else
  redis.call('UNLINK', index)
end
if count > #ended then
  announce(channel, '*', uid)
else
  announce(channel, table.concat(ended, ','), uid)
end
return reply
