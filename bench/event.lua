-- wrk script for event_throughput.py: every request is the same Datastar event POST.
-- Usage: wrk -t1 -c16 -d10s -s event.lua http://127.0.0.1:PORT -- /bench_counter/increment COOKIE
-- COOKIE is the full "starmodel_session=..." pair from the server's Set-Cookie.

wrk.method = "POST"
wrk.body = "{}"
wrk.headers["Datastar-Request"] = "true"
wrk.headers["Content-Type"] = "application/json"

function init(args)
   if args[1] then wrk.path = args[1] end
   if args[2] then wrk.headers["Cookie"] = args[2] end
end

-- One machine-readable line for the driver (it also reads wrk's own text report).
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
