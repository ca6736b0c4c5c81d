-- wrk script for benchmarks/load.py: each connection logs in once, then cycles through
-- eight protected requests and one reissue, forever, and counts what went wrong.
-- Run with as many threads as connections (one connection per thread keeps the state
-- machine below per connection).

local threads = {}
local counters = {"logins", "reissues", "protected", "failures", "reused", "lost"}

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  state, at, rt, n = "login", nil, nil, 0
  logins, reissues, protected, failures, reused, lost = 0, 0, 0, 0, 0, 0
end

local login_body = '{"username": "alice", "password": "correct horse"}'

function request()
  if state == "login" then
    return wrk.format("POST", "/auth/login", {["Content-Type"] = "application/json"}, login_body)
  elseif state == "me" then
    return wrk.format("GET", "/me", {["Authorization"] = "Bearer " .. at})
  end
  return wrk.format("POST", "/auth/reissue",
    {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. at},
    '{"refresh_token": "' .. rt .. '"}')
end

function response(status, headers, body)
  if status ~= 200 then
    failures = failures + 1
    if string.find(body, "refresh_token_reused", 1, true) then reused = reused + 1 end
    if state == "reissue" then lost = lost + 1 end
    state = "login"
    return
  end
  if state == "me" then
    protected = protected + 1
    n = n + 1
    if n >= 8 then state = "reissue" end
    return
  end
  if state == "login" then logins = logins + 1 else reissues = reissues + 1 end
  at = string.match(body, '"access_token":%s*"([^"]+)"')
  rt = string.match(body, '"refresh_token":%s*"([^"]+)"')
  state, n = "me", 0
end

function done(summary, latency, requests)
  local totals = {}
  for _, name in ipairs(counters) do totals[name] = 0 end
  for _, thread in ipairs(threads) do
    for _, name in ipairs(counters) do totals[name] = totals[name] + thread:get(name) end
  end
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.2f p50_ms=%.2f p99_ms=%.2f socket_errors=%d " ..
    "logins=%d reissues=%d protected=%d failures=%d reused=%d lost=%d\n",
    summary.requests, summary.duration / 1e6, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.connect + e.read + e.write + e.timeout,
    totals.logins, totals.reissues, totals.protected, totals.failures, totals.reused,
    totals.lost))
end
