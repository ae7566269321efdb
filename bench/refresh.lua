-- Refresh-token rotation: every request spends a distinct refresh token from the pool
-- (files POOL_IN.<n>, one token a line, split among wrk's threads). A thread that runs out
-- stops. wrk itself always reports the full -d duration, so this script prints SPENT (valid
-- rotations) and ELAPSED (seconds from the threads' start until the last one ran out, or the
-- end) for report.py. The few requests that find the pool empty while their thread stops are
-- sent to /healthz instead of an invalid token.
-- Env: POOL_IN, FLOW_BASIC.
local pool_in = os.getenv("POOL_IN")
local basic = os.getenv("FLOW_BASIC")

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_usec; } bench_timeval;
  int gettimeofday(bench_timeval *tv, void *tz);
]]
local function now()
  local tv = ffi.new("bench_timeval")
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) + tonumber(tv.tv_usec) / 1e6
end

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  tokens = {}
  local f = io.open(pool_in .. "." .. id, "r")
  if f then
    for line in f:lines() do
      if line ~= "" then
        tokens[#tokens + 1] = line
      end
    end
    f:close()
  end
  pos = 0
  spent = 0
  started = now()
  ran_out = 0
  fillers = 0
end

function request()
  pos = pos + 1
  local t = tokens[pos]
  if not t then
    if fillers == 0 then
      ran_out = now() - started
    end
    fillers = fillers + 1
    wrk.thread:stop()
    return wrk.format("GET", "/healthz")
  end
  spent = spent + 1
  return wrk.format("POST", "/token", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["Authorization"] = basic,
  }, "grant_type=refresh_token&refresh_token=" .. t)
end

function done(summary, latency, requests)
  local s, f, elapsed, all_ran_out = 0, 0, 0, true
  for _, t in ipairs(threads) do
    s = s + (t:get("spent") or 0)
    f = f + (t:get("fillers") or 0)
    local r = t:get("ran_out") or 0
    if r == 0 then
      all_ran_out = false
    elseif r > elapsed then
      elapsed = r
    end
  end
  io.write(string.format("SPENT %d\nFILLERS %d\n", s, f))
  if all_ran_out then
    io.write(string.format("ELAPSED %.3f\n", elapsed))
  end
end
