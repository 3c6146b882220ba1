-- wrk script for background load at a fixed rate (bench/freshness.py).
--   wrk -tT -cC -dDs -s wrk_paced.lua URL -- RATE T BODY
-- JSON POSTs of BODY, RATE requests/s in total, shared equally by the T threads (each
-- thread has its own Lua state). delay() hands out send slots on a monotonic clock
-- (LuaJIT's ffi: clock_gettime), so the rate holds whatever the latency, as long as
-- enough connections are open; a server that falls behind is not flooded afterwards
-- (at most 100 ms of missed slots are caught up). wrk measures latency from the send,
-- after the delay. done() prints the BENCH line of wrk_report.lua.

local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } bench_paced_timespec;
int clock_gettime(int clk_id, bench_paced_timespec *tp);
]]
local CLOCK_MONOTONIC = 1
local now_ts = ffi.new("bench_paced_timespec")

local function now_ms()
  ffi.C.clock_gettime(CLOCK_MONOTONIC, now_ts)
  return tonumber(now_ts.tv_sec) * 1000 + tonumber(now_ts.tv_nsec) / 1e6
end

local interval_ms = 1
local next_ms = nil

function init(args)
  local rate, threads = tonumber(args[1]), tonumber(args[2])
  interval_ms = 1000 * threads / rate
  wrk.method = "POST"
  wrk.body = args[3]
  wrk.headers["Content-Type"] = "application/json"
end

function delay()
  local now = now_ms()
  local slot = math.max(next_ms or now, now - 100)
  next_ms = slot + interval_ms
  if slot <= now then
    return 0
  end
  return math.floor(slot - now + 0.5)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
