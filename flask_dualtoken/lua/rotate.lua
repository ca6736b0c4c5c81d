-- The reissue rule, in one atomic step: look up, compare, then rotate, replay or refuse.
-- KEYS: session hash, user index, replay key of the session
-- ARGV: uid, sid, presented_rt_jti, new_rt_jti, at_template, rt_template,
--       access_ttl, idle_ttl, grace_us, margin, client ip, user agent, presented_rt_gen
local now_s, now_us = clock()
local h = redis.call('HMGET', KEYS[1],
  'uid', 'revoked', 'abs_end', 'cur', 'cur_exp', 'prev', 'rot', 'gen')
if not h[1] or h[1] ~= ARGV[1] then return {'unknown'} end
if h[2] then return {'revoked', h[2]} end
local abs_end = tonumber(h[3])
if now_s >= abs_end then return {'expired'} end
-- Out of the index: ended by logout-all or by the session cap.
if not alive(KEYS[2], ARGV[2], now_us) then return {'revoked', 'ended'} end
local grace_us = tonumber(ARGV[9])

local presented = ARGV[3]
if presented == h[4] then
  -- The current refresh token: rotate. The new one expires at min(now + idle, absolute
  -- end); rotation never extends the session's absolute lifetime.
  if now_s >= tonumber(h[5]) then return {'expired'} end
  local at_exp = math.min(now_s + tonumber(ARGV[7]), abs_end)
  local rt_exp = math.min(now_s + tonumber(ARGV[8]), abs_end)
  local gen = tonumber(h[8]) + 1
  redis.call('HSET', KEYS[1],
    'gen', gen, 'prev', presented, 'cur', ARGV[4], 'cur_exp', fmt(rt_exp),
    'rot', fmt(now_us), 'used', fmt(now_us), 'ip', ARGV[11])
  set_agent(KEYS[1], ARGV[12])
  extend_expiry(KEYS[1], rt_exp + tonumber(ARGV[10]), now_s)
  -- What a replay within grace must sign again, kept only as long as the grace lasts.
  if grace_us > 0 then
    redis.call('HSET', KEYS[3], 'at', ARGV[5], 'rt', ARGV[6], 'iat', fmt(now_s),
      'at_exp', fmt(at_exp))
    redis.call('PEXPIREAT', KEYS[3], fmt((now_us + grace_us) / 1000 + 1000))
  end
  return {'rotated', fmt(now_s), fmt(at_exp), fmt(rt_exp), fmt(gen), ARGV[5], ARGV[6]}
end

if presented == h[6] and now_us < tonumber(h[7]) + grace_us then
  -- The predecessor inside [rotation, rotation + grace): a concurrent refresh. Hand back
  -- the pair the first request got; do not rotate again, do not extend the window.
  local p = redis.call('HMGET', KEYS[3], 'iat', 'at_exp', 'at', 'rt')
  if p[1] then
    return {'replayed', p[1], p[2], h[5], h[8], p[3], p[4]}
  end
end

if tonumber(ARGV[13]) < tonumber(h[8]) then
  -- A validly signed refresh token of an earlier generation that is not a predecessor in
  -- grace: a copy is in someone else's hands. End the whole session in this same step.
  revoke(KEYS[1], KEYS[2], KEYS[3], ARGV[2], 'reuse')
  return {'reused', fmt(h[8])}
end

-- A generation the store has not reached: the rotation that issued this token was lost
-- (a Redis failover before it replicated). Not reuse; refuse and change nothing.
return {'unknown'}
