-- wrk script for the benchmark suite.
--   wrk ... -s wrk_report.lua URL                        a plain GET
--   wrk ... -s wrk_report.lua URL -- post BODY [COOKIE]   a JSON POST (with a Cookie header)
-- The request is built once per thread (no request() function), so the script costs
-- nothing per request. done() prints one JSON line starting with BENCH for bench/harness.py.

function init(args)
  if args[1] == "post" then
    wrk.method = "POST"
    wrk.body = args[2]
    wrk.headers["Content-Type"] = "application/json"
    if args[3] then
      wrk.headers["Cookie"] = args[3]
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"status":%d,"connect":%d,"read":%d,' ..
    '"write":%d,"timeout":%d,"p50_us":%d,"p99_us":%d}\n',
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(99)))
end
