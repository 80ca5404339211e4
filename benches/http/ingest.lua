-- wrk script for benches/http/run.sh: 64 connections POST batches of BATCH
-- events (the same event shape as http_load's), each with a unique number in
-- its message, and print one JSON line. TOKEN is an admin or writer key.
-- "errors" counts non-2xx answers and socket errors.
local batch = tonumber(os.getenv("BATCH") or "1")
local token = os.getenv("TOKEN")
local counter = 0
local thread_id = 0
function setup(thread)
  thread_id = thread_id + 1
  thread:set("tid", thread_id)
end
function init(args)
  counter = (tid or 0) * 1000000000
end
local function event(i)
  return string.format('{"category":"device","action":"device.connected","actor":"load-test","entity_type":"device","entity_id":"dev_%d","entity_name":"Living Room LED Strip","message":"Living Room LED Strip connected (load test event %d) after a short network drop","metadata":{"ip":"192.168.1.20","rssi":-61}}', i % 500, i)
end
function request()
  local body
  if batch == 1 then
    body = event(counter)
    counter = counter + 1
  else
    local parts = {}
    for k = 1, batch do
      parts[k] = event(counter)
      counter = counter + 1
    end
    body = "[" .. table.concat(parts, ",") .. "]"
  end
  return wrk.format("POST", "/api/v1/activity", {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}, body)
end
function done(summary, latency, requests)
  io.write(string.format('{"scenario":"ingest_wrk","batch":%d,"requests":%d,"events_per_s":%.0f,"p50_ms":%.2f,"p99_ms":%.2f,"errors":%d}\n',
    batch, summary.requests, summary.requests * batch / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    summary.errors.status + summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
