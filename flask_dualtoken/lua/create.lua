-- Start a session at login, within the user's session cap.
-- Arguments by name: flask_dualtoken/scripts.py, CreateArgs.
local session, index = unpack(KEYS)
local uid, sid, rt_jti, access_ttl, idle_ttl, max_age, margin, ip, user_agent,
  max_sessions, evict_max, channel, amr, stamp = unpack(ARGV)
-- Sessions the cap ends leave the index here (which ends them); the reply names them, and
-- store.py tidies their keys with lua/end_sessions.lua.
local now_s, now_us = clock()
-- This very call has run already (a retry after a lost reply; the session id is new to
-- every login): answer as it did, and end no more sessions.
local done = redis.call('HMGET', session, 'created', 'abs_end', 'cur_exp')
if done[1] and redis.call('ZSCORE', index, sid) then
  local began = math.floor(tonumber(done[1]) / 1000000)
  local at_end = math.min(began + tonumber(access_ttl), tonumber(done[2]))
  return {'created', fmt(began), fmt(at_end), done[3]}
end
max_age, margin = tonumber(max_age), tonumber(margin)
local cap = tonumber(max_sessions)
evict_max = tonumber(evict_max)
local abs_end = now_s + max_age
-- Neither token outlives the session's absolute end.
local at_exp = math.min(now_s + tonumber(access_ttl), abs_end)
local rt_exp = math.min(now_s + tonumber(idle_ttl), abs_end)
-- Short values only: Redis then keeps the hash in its compact encoding (listpack).
redis.call('HSET', session,
  'uid', uid, 'created', fmt(now_us), 'used', fmt(now_us), 'abs_end', fmt(abs_end),
  'gen', 0, 'cur', rt_jti, 'cur_exp', fmt(rt_exp), 'prev', '', 'rot', fmt(now_us),
  'ip', ip, 'auth', fmt(now_s), 'amr', amr)
-- The digest of the user's security stamp, when the app keeps one (lua/rotate.lua).
if stamp ~= '' then redis.call('HSET', session, 'stamp', stamp) end
set_agent(session, user_agent)
redis.call('EXPIREAT', session, fmt(rt_exp + margin))
-- The index: drop sessions past their end, then make room under the cap by ending the
-- sessions that end first (the oldest), at most evict_max per call so that the work stays
-- bounded even right after the cap was lowered.
redis.call('ZREMRANGEBYSCORE', index, '-inf', fmt(now_us))
local reply = {'created', fmt(now_s), fmt(at_exp), fmt(rt_exp)}
if cap > 0 then
  local excess = math.min(redis.call('ZCARD', index) - cap + 1, evict_max)
  if excess > 0 then
    local popped, ended = redis.call('ZPOPMIN', index, excess), {}
    for i = 1, #popped, 2 do
      table.insert(reply, popped[i])
      table.insert(ended, popped[i])
    end
    announce(channel, table.concat(ended, ','), uid)
  end
end
redis.call('ZADD', index, fmt(now_us + max_age * 1000000), sid)
extend_expiry(index, abs_end + margin, now_s)
return reply
