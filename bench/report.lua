-- Shared by the scenario scripts (each loads it with dofile): numbers the threads, paces
-- requests when BENCH_RATE is set, counts statuses when the script asks for it, and at the end
-- prints one line `BENCH_JSON {...}` that bench/run parses. Settings come from the environment
-- because wrk decides whether to call delay() and response() when the script loads, before init.

local ffi = require("ffi")
ffi.cdef [[
  typedef struct { long tv_sec; long tv_nsec; } bench_timespec;
  int clock_gettime(int clock, bench_timespec *ts);
]]
local timespec = ffi.new("bench_timespec")
local function now()
  ffi.C.clock_gettime(1, timespec) -- CLOCK_MONOTONIC
  return tonumber(timespec.tv_sec) + tonumber(timespec.tv_nsec) * 1e-9
end

-- Main state: every thread, so done() can collect what each one counted.
local threads = {}
function setup(thread)
  thread:set("thread_id", #threads)
  table.insert(threads, thread)
end

-- Thread states: status counts and, with one connection per thread, latency by status. Only flat
-- tables: wrk 4.1's thread:get crashes copying a table that holds tables.
counts, latency_ms, latency_status = {}, {}, {}
local timing = os.getenv("BENCH_TIMING") == "1"
local sent_at

-- Scripts call this from request(): with a single connection per thread, requests and responses
-- strictly alternate, so the request sent last is the one being answered.
function mark_sent()
  if timing then sent_at = now() end
end

if want_status then
  function response(status, headers, body)
    local key = tostring(status)
    counts[key] = (counts[key] or 0) + 1
    if timing and sent_at then
      table.insert(latency_ms, (now() - sent_at) * 1000)
      table.insert(latency_status, key)
      sent_at = nil
    end
  end
end

-- Pacing: each call reserves the next slot of this thread's schedule, so the thread offers
-- BENCH_RATE requests/s whatever the latency, as long as one of its connections is idle.
-- A thread that falls behind (all connections busy) does not burst to catch up.
local rate = tonumber(os.getenv("BENCH_RATE") or "")
if rate then
  local interval, next_at = 1 / rate, nil
  function delay()
    local t = now()
    next_at = next_at or t + math.random() * interval
    local slot = math.max(next_at, t)
    next_at = slot + interval
    return (slot - t) * 1000
  end
end

local function encode(value)
  if type(value) == "table" then
    local parts = {}
    for k, v in pairs(value) do
      table.insert(parts, string.format("%q:%s", tostring(k), encode(v)))
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(value) == "number" then
    return value == math.floor(value) and string.format("%d", value) or string.format("%.3f", value)
  end
  return string.format("%q", tostring(value))
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, math.ceil(#sorted * p / 100))]
end

function done(summary, latency, requests)
  local status, by_status = {}, {}
  for _, thread in ipairs(threads) do
    for k, v in pairs(thread:get("counts") or {}) do status[k] = (status[k] or 0) + v end
    local statuses = thread:get("latency_status") or {}
    for i, ms in ipairs(thread:get("latency_ms") or {}) do
      local k = statuses[i]
      by_status[k] = by_status[k] or {}
      table.insert(by_status[k], ms)
    end
  end
  local latency_by_status = {}
  for k, list in pairs(by_status) do
    table.sort(list)
    latency_by_status[k] = {
      count = #list, p50_ms = percentile(list, 50), p99_ms = percentile(list, 99), max_ms = list[#list],
    }
  end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write("BENCH_JSON ", encode({
    requests = summary.requests,
    seconds = seconds,
    rps = summary.requests / seconds,
    p50_ms = latency:percentile(50) / 1000,
    p90_ms = latency:percentile(90) / 1000,
    p99_ms = latency:percentile(99) / 1000,
    max_ms = latency.max / 1000,
    mean_ms = latency.mean / 1000,
    status = status,
    latency_by_status = latency_by_status,
    -- wrk's own error counts: non_2xx covers every status outside 200-399
    errors = { connect = e.connect, read = e.read, write = e.write, timeout = e.timeout, non_2xx = e.status },
  }), "\n")
end
