-- GET /auth/verify cycling round-robin over every token in BENCH_TOKENS_FILE (one a line): a
-- gateway in front of many active users, where a token comes back only after all the others.
-- The requests are formatted once, in init, so the cycle costs wrk nothing per request.
dofile(debug.getinfo(1, "S").source:sub(2):match("(.*/)") .. "report.lua")

local requests, next_request = {}, 1

function init(args)
  for token in io.lines(os.getenv("BENCH_TOKENS_FILE")) do
    requests[#requests + 1] = wrk.format("GET", "/auth/verify", { Authorization = "Bearer " .. token })
  end
  -- Each thread starts at its own place in the cycle.
  next_request = ((thread_id or 0) * 7919) % #requests + 1
end

function request()
  local prepared = requests[next_request]
  next_request = next_request % #requests + 1
  return prepared
end
