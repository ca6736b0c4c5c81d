-- Re-authentication (POST /auth/reauth): the user of a live session proved who they are
-- again. In one atomic step the session rotates as at a reissue (lua/prelude.lua,
-- rotate_session: a new refresh token, the current one its predecessor, so a reissue
-- racing with this one still gets this very pair within grace) and records the proof:
-- 'auth' now, 'amr' how, and the user's security stamp as of now.
-- Arguments by name: flask_dualtoken/scripts.py, ReauthArgs.
local session, index, replay = unpack(KEYS)
local uid, sid, new_jti, at_template, rt_template, access_ttl, idle_ttl, grace_us, margin,
  ip, user_agent, amr, stamp = unpack(ARGV)
local now_s, now_us = clock()
local h = redis.call('HMGET', session,
  'uid', 'revoked', 'abs_end', 'cur', 'cur_exp', 'rot', 'gen', 'auth', 'stamp_was',
  'stamp_until')
if not h[1] or h[1] ~= uid then return {'unknown'} end
if h[2] then return {'revoked', h[2]} end
local abs_end = tonumber(h[3])
if now_s >= abs_end then return {'expired'} end
if not alive(index, sid, now_us) then return {'revoked', 'ended'} end
-- This very call has run already (a retry after a lost reply): answer what it answered.
if h[4] == new_jti then
  local iat = math.floor(tonumber(h[6]) / 1000000)
  local at_exp = math.min(iat + tonumber(access_ttl), abs_end)
  return {'rotated', fmt(iat), fmt(at_exp), h[5], h[7], at_template, rt_template, h[8], amr}
end
-- The refresh token lapsed (idle): a proof of the password does not revive it.
if now_s >= tonumber(h[5]) then return {'expired'} end
local fields = {'auth', fmt(now_s), 'amr', amr}
-- The stamp as of this proof; but not the one lua/end_others.lua just replaced (the
-- password was checked before the change).
local replaced = h[9] and h[10] and now_us < tonumber(h[10]) and h[9] == stamp
if stamp ~= '' and not replaced then
  table.insert(fields, 'stamp')
  table.insert(fields, stamp)
end
return rotate_session(session, replay, {
  now_s = now_s, now_us = now_us, abs_end = abs_end, cur = h[4], gen = h[7],
  new_jti = new_jti, at_template = at_template, rt_template = rt_template,
  access_ttl = access_ttl, idle_ttl = idle_ttl, grace_us = grace_us, margin = margin,
  ip = ip, user_agent = user_agent, auth = fmt(now_s), amr = amr,
}, fields)
