-- wrk script for benches/http/run.sh: 64 connections GET one query path
-- (QUERY, e.g. "/api/v1/activity?limit=50") as fast as the server answers,
-- and print one JSON line: the saturated rate, not a latency at a set rate
-- (http_load measures that). TOKEN is a reader key or better. "errors"
-- counts non-2xx answers and socket errors.
local path = os.getenv("QUERY")
local token = os.getenv("TOKEN")
function request()
  return wrk.format("GET", path, {["Authorization"] = "Bearer " .. token})
end
function done(summary, latency, requests)
  io.write(string.format('{"scenario":"query_wrk","path":"%s","requests":%d,"requests_per_s":%.0f,"p50_ms":%.2f,"p99_ms":%.2f,"errors":%d}\n',
    path, summary.requests, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
