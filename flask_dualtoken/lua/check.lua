-- Strict mode: is this session alive? Read-only.
-- Arguments by name: flask_dualtoken/scripts.py, CheckArgs.
local index = unpack(KEYS)
local sid = unpack(ARGV)
local _, now_us = clock()
if alive(index, sid, now_us) then return 1 end
return 0
