-- The reissue rule, in one atomic step: look up, compare, then rotate, replay or refuse.
-- Arguments by name: flask_dualtoken/scripts.py, RotateArgs.
local session, index, replay = unpack(KEYS)
local uid, sid, presented_jti, new_jti, at_template, rt_template, access_ttl, idle_ttl,
  grace_us, margin, ip, user_agent, presented_gen, channel = unpack(ARGV)
local now_s, now_us = clock()
local h = redis.call('HMGET', session,
  'uid', 'revoked', 'abs_end', 'cur', 'cur_exp', 'prev', 'rot', 'gen', 'auth', 'amr',
  'created')
-- When the user last proved who they are, and how: carried unchanged into every pair
-- (a session stored before these were kept: its start, and no methods).
local auth = h[9] or (h[11] and fmt(math.floor(tonumber(h[11]) / 1000000))) or '0'
local amr = h[10] or ''
if not h[1] or h[1] ~= uid then return {'unknown'} end
if h[2] then return {'revoked', h[2]} end
local abs_end = tonumber(h[3])
if now_s >= abs_end then return {'expired'} end
-- Out of the index: ended by logout-all or by the session cap.
if not alive(index, sid, now_us) then return {'revoked', 'ended'} end
-- This very call has run already: the client retried after losing the reply (redis-py
-- retries once on a dropped connection). Answer what it answered; rotate nothing again.
if h[4] == new_jti then
  local iat = math.floor(tonumber(h[7]) / 1000000)
  local at_exp = math.min(iat + tonumber(access_ttl), abs_end)
  return {'rotated', fmt(iat), fmt(at_exp), h[5], h[8], at_template, rt_template, auth, amr}
end
grace_us = tonumber(grace_us)

if presented_jti == h[4] then
  -- The current refresh token: rotate. The new one expires at min(now + idle, absolute
  -- end); rotation never extends the session's absolute lifetime.
  if now_s >= tonumber(h[5]) then return {'expired'} end
  local at_exp = math.min(now_s + tonumber(access_ttl), abs_end)
  local rt_exp = math.min(now_s + tonumber(idle_ttl), abs_end)
  local gen = tonumber(h[8]) + 1
  redis.call('HSET', session,
    'gen', gen, 'prev', presented_jti, 'cur', new_jti, 'cur_exp', fmt(rt_exp),
    'rot', fmt(now_us), 'used', fmt(now_us), 'ip', ip)
  set_agent(session, user_agent)
  extend_expiry(session, rt_exp + tonumber(margin), now_s)
  -- What a replay within grace must sign again, kept only as long as the grace lasts.
  if grace_us > 0 then
    redis.call('HSET', replay, 'at', at_template, 'rt', rt_template, 'iat', fmt(now_s),
      'at_exp', fmt(at_exp))
    redis.call('PEXPIREAT', replay, fmt((now_us + grace_us) / 1000 + 1000))
  end
  return {'rotated', fmt(now_s), fmt(at_exp), fmt(rt_exp), fmt(gen), at_template, rt_template,
    auth, amr}
end

if presented_jti == h[6] and now_us < tonumber(h[7]) + grace_us then
  -- The predecessor inside [rotation, rotation + grace): a concurrent refresh. Hand back
  -- the pair the first request got; do not rotate again, do not extend the window.
  local p = redis.call('HMGET', replay, 'iat', 'at_exp', 'at', 'rt')
  if p[1] then
    return {'replayed', p[1], p[2], h[5], h[8], p[3], p[4], auth, amr}
  end
end

if tonumber(presented_gen) < tonumber(h[8]) then
  -- A validly signed refresh token of an earlier generation that is not a predecessor in
  -- grace: a copy is in someone else's hands. End the whole session in this same step.
  revoke(session, index, replay, sid, 'reuse')
  announce(channel, sid, uid)
  return {'reused', fmt(h[8])}
end

-- A generation the store has not reached: the rotation that issued this token was lost
-- (a Redis failover before it replicated). Not reuse; refuse and change nothing.
return {'unknown'}
