-- wrk script for sql_throughput.py --mode spread: the event POST of event.lua, each request
-- on a row drawn at random among ROWS (keys 1..ROWS).
-- Usage: wrk -t1 -c16 -d10s -s spread.lua http://127.0.0.1:PORT -- /bench_row/increment ROWS [COOKIE]

wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Datastar-Request"] = "true"
wrk.headers["Content-Type"] = "application/json"

local path = "/"
local rows = 1

function init(args)
   path = args[1]
   rows = tonumber(args[2])
   if args[3] then wrk.headers["Cookie"] = args[3] end
   math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16))
end

function request()
   return wrk.format(nil, path .. "?_key=" .. math.random(1, rows))
end

-- One machine-readable line for the driver, as event.lua writes it.
function done(summary, latency, requests)
   local e = summary.errors
   io.write(string.format(
      "BENCH_JSON {\"requests\":%d,\"duration_us\":%d,\"bytes\":%d," ..
      "\"connect_errors\":%d,\"read_errors\":%d,\"write_errors\":%d," ..
      "\"timeouts\":%d,\"status_errors\":%d," ..
      "\"latency_p50_us\":%d,\"latency_p99_us\":%d,\"latency_mean_us\":%.1f}\n",
      summary.requests, summary.duration, summary.bytes,
      e.connect, e.read, e.write, e.timeout, e.status,
      latency:percentile(50), latency:percentile(99), latency.mean))
end
