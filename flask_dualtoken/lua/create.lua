-- Start a session at login.
-- KEYS: session hash, user index
-- ARGV: uid, sid, rt_jti, at_template, rt_template, access_ttl, idle_ttl, max_age, margin
local now_s, now_us = clock()
local abs_end = now_s + tonumber(ARGV[8])
local at_exp = now_s + tonumber(ARGV[6])
local rt_exp = math.min(now_s + tonumber(ARGV[7]), abs_end)
redis.call('HSET', KEYS[1],
  'uid', ARGV[1], 'created', fmt(now_us), 'abs_end', fmt(abs_end), 'gen', 0,
  'cur', ARGV[3], 'cur_exp', fmt(rt_exp), 'prev', '', 'rot', fmt(now_us),
  'at', ARGV[4], 'rt', ARGV[5], 'iat', fmt(now_s), 'at_exp', fmt(at_exp))
redis.call('EXPIREAT', KEYS[1], fmt(rt_exp + tonumber(ARGV[9])))
-- The per-user index: sid -> absolute end; dead entries pruned on every login.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now_s))
redis.call('ZADD', KEYS[2], fmt(abs_end), ARGV[2])
local last = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('EXPIREAT', KEYS[2], fmt(tonumber(last[2]) + tonumber(ARGV[9])))
return {'created', fmt(now_s), fmt(at_exp), fmt(rt_exp)}
