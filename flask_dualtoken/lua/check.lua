-- Strict mode: is this session alive? Read-only.
-- KEYS: user index
-- ARGV: sid
local now_s = clock()
if alive(KEYS[1], ARGV[1], now_s) then return 1 end
return 0
