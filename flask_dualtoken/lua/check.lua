-- Strict mode: is this session alive? Read-only.
-- KEYS: user index
-- ARGV: sid
local _, now_us = clock()
if alive(KEYS[1], ARGV[1], now_us) then return 1 end
return 0
