-- The authorization-code flow for a signed-in user: GET /authorize with the session cookie
-- (303 with ?code=), then POST /token with that code. Codes go into a per-thread queue: a
-- connection that finds a code waiting exchanges it, otherwise it starts a new authorize.
-- Every request is independent, so wrk's connections need no per-connection state.
-- Env: FLOW_AUTHORIZE (path?query), SESSION_COOKIE, FLOW_BASIC ("Basic …"),
-- FLOW_REDIRECT_ENC (form-encoded redirect_uri), POOL_OUT (optional: write refresh tokens to
-- POOL_OUT.<thread>).
local authorize = os.getenv("FLOW_AUTHORIZE")
local cookie = "latchkey-session=" .. os.getenv("SESSION_COOKIE")
local basic = os.getenv("FLOW_BASIC")
local redirect = os.getenv("FLOW_REDIRECT_ENC")
local pool_out = os.getenv("POOL_OUT")

local threads = {}
local counter = 0

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  queue = {}
  flows = 0
  bad = 0
  if pool_out and pool_out ~= "" then
    out = io.open(pool_out .. "." .. id, "w")
  end
end

function request()
  local code = table.remove(queue)
  if code then
    return wrk.format("POST", "/token", {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["Authorization"] = basic,
    }, "grant_type=authorization_code&code=" .. code .. "&redirect_uri=" .. redirect)
  end
  return wrk.format("GET", authorize, { ["Cookie"] = cookie })
end

function response(status, headers, body)
  if status == 303 then
    local loc = headers["Location"] or headers["location"] or ""
    local code = loc:match("[?&]code=([^&]+)")
    if code then
      table.insert(queue, code)
    else
      bad = bad + 1
    end
  elseif status == 200 then
    flows = flows + 1
    if out then
      local r = body:match('"refresh_token"%s*:%s*"([^"]+)"')
      if r then
        out:write(r, "\n")
        out:flush()
      end
    end
  else
    bad = bad + 1
  end
end

function done(summary, latency, requests)
  local f, b = 0, 0
  for _, t in ipairs(threads) do
    f = f + (t:get("flows") or 0)
    b = b + (t:get("bad") or 0)
  end
  io.write(string.format("FLOWS %d\nBADFLOWS %d\n", f, b))
end
