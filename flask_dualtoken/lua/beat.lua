-- Push revocation's heartbeat (flask_dualtoken/revocation.py): echo a beat to one listener,
-- but only while the key it wrote when its listening period began is still there. A store
-- that lost its data (FLUSHALL, a restart without persistence) ended every session without
-- announcing it: the listener must then start a new period and ask again.
-- Arguments by name: flask_dualtoken/scripts.py, BeatArgs.
local epoch = unpack(KEYS)
local expected, channel, beat, ttl_ms = unpack(ARGV)
if redis.call('GET', epoch) ~= expected then return 0 end
redis.call('PEXPIRE', epoch, ttl_ms)
redis.call('PUBLISH', channel, beat)
return 1
