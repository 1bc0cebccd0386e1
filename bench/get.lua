-- GET BENCH_PATH, with `Authorization: Bearer BENCH_TOKEN` when given: /auth/verify, the admin
-- list, and nginx's `return 200` for comparison. No response() hook, so wrk does no extra work per
-- response here (statuses outside 2xx/3xx are still counted, as errors.non_2xx).
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local path = os.getenv("BENCH_PATH") or "/"
local token = os.getenv("BENCH_TOKEN")
local prepared

function request()
  if not prepared then
    local headers = {}
    if token and token ~= "" then headers["Authorization"] = "Bearer " .. token end
    prepared = wrk.format("GET", path, headers)
  end
  return prepared
end
