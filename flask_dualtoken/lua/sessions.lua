-- List a user's live sessions from the index, pruning dead entries on the way.
-- Session keys are built here from their prefix; they share the index's hash tag, so on a
-- cluster they live in the same slot.
-- KEYS: user index, user epoch
-- ARGV: session key prefix
local now_s = clock()
local current = epoch(KEYS[2])
local out = {}
for _, sid in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  local key = ARGV[1] .. sid
  local h = redis.call('HMGET', key, 'created', 'used', 'cur_exp', 'ip', 'revoked', 'epoch')
  if not h[1] or h[5] or h[6] ~= current or now_s >= tonumber(h[3]) then
    redis.call('ZREM', KEYS[1], sid)
  else
    table.insert(out, sid)
    for i = 1, 4 do table.insert(out, h[i]) end
    table.insert(out, get_agent(key))
  end
end
return out
