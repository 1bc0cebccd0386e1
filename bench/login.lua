-- POST /auth/login as one of BENCH_USERS seeded users (user0..user{N-1}@example.com), chosen at
-- random so logins are spread over the table like real traffic (and not serialised on one row).
want_status = true
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local users = tonumber(os.getenv("BENCH_USERS") or "1000")
local password = os.getenv("BENCH_PASSWORD")
local headers = { ["Content-Type"] = "application/json" }

function init(args)
  math.randomseed(thread_id + 1)
end

function request()
  local body = string.format('{"email":"user%d@example.com","password":"%s"}',
    math.random(0, users - 1), password)
  mark_sent()
  return wrk.format("POST", "/auth/login", headers, body)
end
