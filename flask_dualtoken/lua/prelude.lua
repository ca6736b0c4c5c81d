-- Shared by every script (prepended by store.py). Times come from Redis TIME so that
-- every app server agrees on one clock. Numbers are written with %.0f: Lua's default
-- number-to-string conversion would round microsecond timestamps.
-- Redis runs Lua 5.1 (global unpack); other Lua versions keep it in table.
local unpack = unpack or table.unpack

local function fmt(n) return string.format('%.0f', n) end

local function clock()
  local t = redis.call('TIME')
  local s = tonumber(t[1])
  return s, s * 1000000 + tonumber(t[2])
end

-- A session is alive while its id is in the user's index (sid -> absolute end, in
-- microseconds so that the oldest of sessions started in one second is known) with an end
-- still ahead. Every way a session ends removes it there (logout, revocation, reuse, the
-- session cap, logout-all dropping the whole index), and nothing ever adds an id again, so
-- an ended session cannot come back, whatever the settings or key lifetimes.
local function alive(index, sid, now_us)
  local ends = redis.call('ZSCORE', index, sid)
  return ends ~= false and ends ~= nil and tonumber(ends) > now_us
end

-- Push a key's expiry out to at_s, never pull it in: a process with shorter lifetimes
-- must not shorten what another process's sessions need.
local function extend_expiry(key, at_s, now_s)
  if redis.call('TTL', key) < at_s - now_s then redis.call('EXPIREAT', key, fmt(at_s)) end
end

-- An ended session leaves only a marker ('uid' and the 'revoked' reason) for at most
-- ENDED_MARKER_SECONDS, so a late request still gets a precise answer, and then nothing
-- (docs/operations.md says what that costs a user who logs in very often). The replay key
-- goes at once, so nothing replayable stays behind.
local ENDED_MARKER_SECONDS = 900

local function end_session(session, replay, reason)
  local uid = redis.call('HGET', session, 'uid')
  local ttl = redis.call('TTL', session)
  redis.call('DEL', session, replay)
  if uid and ttl > 0 then
    redis.call('HSET', session, 'uid', uid, 'revoked', reason)
    redis.call('EXPIRE', session, math.min(ttl, ENDED_MARKER_SECONDS))
  end
end

-- Tell every process that sessions ended, in the same atomic step that ends them (push
-- revocation, docs/design.md): 'sid1,sid2 uid', or '* uid' for all of a user's sessions.
-- The user id goes last, so it may hold any character.
local function announce(channel, sids, uid)
  redis.call('PUBLISH', channel, sids .. ' ' .. uid)
end

-- Revocation is final: out of the index (which is what ends it), then the marker.
local function revoke(session, index, replay, sid, reason)
  redis.call('ZREM', index, sid)
  end_session(session, replay, reason)
end

-- The user agent is kept in pieces of at most 64 bytes ('ua1', 'ua2', ...): Redis keeps a
-- hash in its compact encoding (listpack) only while every value is that short, and a
-- browser's user agent alone would otherwise more than double a session's memory.
local function set_agent(session, agent)
  local n = 0
  for i = 1, #agent, 64 do
    n = n + 1
    redis.call('HSET', session, 'ua' .. n, string.sub(agent, i, i + 63))
  end
  local old = tonumber(redis.call('HGET', session, 'uan') or '0')
  for j = n + 1, old do redis.call('HDEL', session, 'ua' .. j) end
  redis.call('HSET', session, 'uan', n)
end

-- A script touches only keys it is given (the Redis documentation requires it, and some
-- servers refuse anything else). Sessions found only as a script runs (the oldest beyond
-- the cap, every session at logout-all) are ended there by leaving the index, which is
-- what ends a session; their own keys are tidied by lua/end_sessions.lua in a second call
-- that declares them. These are such declared keys, after the script's own: a session
-- hash and its replay key per session id in `sids` (comma-separated), in that order.
local function declared_sessions(first, sids)
  local out, i = {}, first
  for sid in string.gmatch(sids, '[^,]+') do
    table.insert(out, {sid, KEYS[i], KEYS[i + 1]})
    i = i + 2
  end
  return out
end

local function get_agent(session)
  local n = tonumber(redis.call('HGET', session, 'uan') or '0')
  local parts = {}
  for j = 1, n do parts[j] = redis.call('HGET', session, 'ua' .. j) or '' end
  return table.concat(parts)
end

-- Rotate a live session to a new refresh token, for a reissue (lua/rotate.lua) or a
-- re-authentication (lua/reauth.lua): the current one becomes the predecessor, whose
-- holder gets this very pair again within the grace window, and the pair is kept no
-- longer than that. The new refresh token expires at min(now + idle, absolute end):
-- rotation never extends the session's absolute lifetime. `r`: the calling script's
-- arguments and what it read, by the names it uses; `fields`: more session fields to set
-- in the same step. Returns the script's answer.
local function rotate_session(session, replay, r, fields)
  local at_exp = math.min(r.now_s + tonumber(r.access_ttl), r.abs_end)
  local rt_exp = math.min(r.now_s + tonumber(r.idle_ttl), r.abs_end)
  local gen = tonumber(r.gen) + 1
  redis.call('HSET', session,
    'gen', gen, 'prev', r.cur, 'cur', r.new_jti, 'cur_exp', fmt(rt_exp),
    'rot', fmt(r.now_us), 'used', fmt(r.now_us), 'ip', r.ip, unpack(fields))
  set_agent(session, r.user_agent)
  extend_expiry(session, rt_exp + tonumber(r.margin), r.now_s)
  -- What a replay within grace must sign again, kept only as long as the grace lasts.
  local grace_us = tonumber(r.grace_us)
  if grace_us > 0 then
    redis.call('HSET', replay, 'at', r.at_template, 'rt', r.rt_template, 'iat', fmt(r.now_s),
      'at_exp', fmt(at_exp))
    redis.call('PEXPIREAT', replay, fmt((r.now_us + grace_us) / 1000 + 1000))
  else
    -- No grace here: an earlier rotation's pair must not answer for this predecessor on
    -- a process that still has a grace window (a rolling change of the setting).
    redis.call('DEL', replay)
  end
  return {'rotated', fmt(r.now_s), fmt(at_exp), fmt(rt_exp), fmt(gen), r.at_template,
    r.rt_template, r.auth, r.amr}
end

-- The session's security stamp against the user's (docs/sensitive-actions.md). `stamps`:
-- the user's digests, the current secret's first, comma-separated ('' when the app keeps
-- none). 'changed' when the session recorded another one: it began before the user's
-- credentials changed. 'handover' when it matches only the one lua/end_others.lua just
-- replaced on the session it kept (a request that loaded the user before the change).
-- Else 'same' (or no stamp on either side: a session stored before the app kept them).
local function compare_stamp(stamps, recorded, was, was_until, now_us)
  if stamps == '' or not recorded or recorded == '' then return 'same' end
  local former = was and was_until and now_us < tonumber(was_until) and was
  local handover = false
  for digest in string.gmatch(stamps, '[^,]+') do
    if digest == recorded then return 'same' end
    if digest == former then handover = true end
  end
  if handover then return 'handover' end
  return 'changed'
end
