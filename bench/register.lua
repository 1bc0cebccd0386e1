-- POST /auth/register with a new address every time: BENCH_TAG (one per wrk run), the thread
-- number and a counter, so no registration collides with another (409 would skip the hash).
want_status = true
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local tag = os.getenv("BENCH_TAG") or "r"
local password = os.getenv("BENCH_PASSWORD")
local headers = { ["Content-Type"] = "application/json" }
local counter = 0

function request()
  counter = counter + 1
  local body = string.format('{"email":"reg-%s-%d-%d@example.com","password":"%s"}',
    tag, thread_id, counter, password)
  mark_sent()
  return wrk.format("POST", "/auth/register", headers, body)
end
