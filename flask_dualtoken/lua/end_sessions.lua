-- Tidy sessions that have left their user's index (the cap ended them in lua/create.lua,
-- or logout-all in lua/revoke_all.lua): each shrinks to its marker (prelude: end_session).
-- A session still in the index is left alone, so a late or repeated call ends nothing.
-- Arguments by name: flask_dualtoken/scripts.py, EndSessionsArgs.
local index = unpack(KEYS)
local reason, sids = unpack(ARGV)
local _, now_us = clock()
for _, s in ipairs(declared_sessions(2, sids)) do
  if not alive(index, s[1], now_us) then end_session(s[2], s[3], reason) end
end
return 1
