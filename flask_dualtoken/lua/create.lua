-- Start a session at login, within the user's session cap.
-- KEYS: session hash, user index
-- ARGV: uid, sid, rt_jti, access_ttl, idle_ttl, max_age, margin, client ip, user agent,
--       max sessions (0: no cap), most sessions one call may end, the user's key prefix
-- The keys of the sessions the cap ends are built from the user's key prefix: which they
-- are is known only here. They share the index's hash tag, so on a cluster they live in
-- the same slot.
local now_s, now_us = clock()
local max_age, margin = tonumber(ARGV[6]), tonumber(ARGV[7])
local cap, evict_max = tonumber(ARGV[10]), tonumber(ARGV[11])
local abs_end = now_s + max_age
-- Neither token outlives the session's absolute end.
local at_exp = math.min(now_s + tonumber(ARGV[4]), abs_end)
local rt_exp = math.min(now_s + tonumber(ARGV[5]), abs_end)
-- Short values only: Redis then keeps the hash in its compact encoding (listpack).
redis.call('HSET', KEYS[1],
  'uid', ARGV[1], 'created', fmt(now_us), 'used', fmt(now_us), 'abs_end', fmt(abs_end),
  'gen', 0, 'cur', ARGV[3], 'cur_exp', fmt(rt_exp), 'prev', '', 'rot', fmt(now_us),
  'ip', ARGV[8])
set_agent(KEYS[1], ARGV[9])
redis.call('EXPIREAT', KEYS[1], fmt(rt_exp + margin))
-- The index: drop sessions past their end, then make room under the cap by ending the
-- sessions that end first (the oldest), at most evict_max per call so that the work stays
-- bounded even right after the cap was lowered.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now_us))
local reply = {'created', fmt(now_s), fmt(at_exp), fmt(rt_exp)}
if cap > 0 then
  local excess = math.min(redis.call('ZCARD', KEYS[2]) - cap + 1, evict_max)
  if excess > 0 then
    local popped = redis.call('ZPOPMIN', KEYS[2], excess)
    for i = 1, #popped, 2 do
      local sid = popped[i]
      end_session(ARGV[12] .. 's:' .. sid, ARGV[12] .. 'r:' .. sid, 'session_limit')
      table.insert(reply, sid)
    end
  end
end
redis.call('ZADD', KEYS[2], fmt(now_us + max_age * 1000000), ARGV[2])
extend_expiry(KEYS[2], abs_end + margin, now_s)
return reply
