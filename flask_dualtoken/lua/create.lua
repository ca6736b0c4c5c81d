-- Start a session at login.
-- KEYS: session hash, user index, user epoch
-- ARGV: uid, sid, rt_jti, access_ttl, idle_ttl, max_age, margin, client ip, user agent
local now_s, now_us = clock()
local max_age, margin = tonumber(ARGV[6]), tonumber(ARGV[7])
local abs_end = now_s + max_age
local at_exp = now_s + tonumber(ARGV[4])
local rt_exp = math.min(now_s + tonumber(ARGV[5]), abs_end)
-- Short values only: Redis then keeps the hash in its compact encoding (listpack).
redis.call('HSET', KEYS[1],
  'uid', ARGV[1], 'epoch', epoch(KEYS[3]), 'created', fmt(now_us), 'used', fmt(now_us),
  'abs_end', fmt(abs_end), 'gen', 0, 'cur', ARGV[3], 'cur_exp', fmt(rt_exp), 'prev', '',
  'rot', fmt(now_us), 'ip', ARGV[8])
set_agent(KEYS[1], ARGV[9])
redis.call('EXPIREAT', KEYS[1], fmt(rt_exp + margin))
-- The epoch must outlive every session created under it.
if redis.call('EXISTS', KEYS[3]) == 1 then
  redis.call('EXPIRE', KEYS[3], fmt(max_age + margin))
end
-- The per-user index: sid -> absolute end; dead entries pruned on every login.
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', fmt(now_s))
redis.call('ZADD', KEYS[2], fmt(abs_end), ARGV[2])
redis.call('EXPIRE', KEYS[2], fmt(max_age + margin))
return {'created', fmt(now_s), fmt(at_exp), fmt(rt_exp)}
