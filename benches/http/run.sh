#!/usr/bin/env bash
# HTTP-level figures: the real `actlog` server (release) on a copy of the
# prepared N-record log, loaded from a second process (`http_load`) on
# loopback. Usage: benches/http/run.sh [N]   (default 1000000)
# Prints one JSON line per scenario, then the server's peak and current RSS.
# ACTLOG_BENCH_SERVER=PATH runs another server binary (an older build, for
# an A/B against the same client and data) instead of target/release/actlog.
set -euo pipefail
cd "$(dirname "$0")/../.."
N=${1:-1000000}
PORT=${ACTLOG_BENCH_PORT:-8479}
cargo build --release -q -p actlog-server -p actlog-benches --bins
# wrk (Debian) drives the ingest rows a second time with a client that costs
# the shared 2 cores far less than http_load's reqwest + serde_json.
command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
if [ ! -d "target/bench-data/log-$N" ]; then
  ACTLOG_BENCH_RECORDS=$N target/release/engine_figures --records "$N" --iters 1 --opens 1 --retention-runs 0 --no-cold >/dev/null
fi
DATA="target/bench-data/http-$N"
rm -rf "$DATA"
cp -r "target/bench-data/log-$N" "$DATA"
rm -f "$DATA/LOCK"
TOKEN="actlog_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
SERVER=${ACTLOG_BENCH_SERVER:-target/release/actlog}
ACTLOG_ADMIN_TOKEN="$TOKEN" ACTLOG_LOG=warn "$SERVER" serve --data "$DATA" --listen "127.0.0.1:$PORT" >/dev/null &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.1
done
L="target/release/http_load --url http://127.0.0.1:$PORT --token $TOKEN"
$L ingest --clients 64 --batch 1 --seconds 10
$L ingest --clients 64 --batch 100 --seconds 10
for b in 1 100; do
  BATCH=$b TOKEN=$TOKEN wrk -t2 -c64 -d10s -s benches/http/ingest.lua "http://127.0.0.1:$PORT" | grep '^{'
done
$L query --rate 1000 --seconds 10 --path '/api/v1/activity?limit=50'
$L query --rate 1000 --seconds 10 --path '/api/v1/activity?category=device&action=device.disconnected&limit=50'
$L query --rate 200 --seconds 5 --path '/api/v1/activity/facets/actor'
$L query --rate 200 --seconds 5 --path '/api/v1/activity/histogram?bucket=1h'
# The same reads at saturation (64 wrk connections, as fast as answered):
# the rates the reference's requests/s compare with.
for q in '/api/v1/activity?limit=50' \
  '/api/v1/activity?category=device&action=device.disconnected&limit=50' \
  '/api/v1/activity?entity_id=dev_3&limit=50' \
  '/api/v1/activity/facets/actor' '/api/v1/activity/histogram?bucket=1h'; do
  QUERY="$q" TOKEN=$TOKEN wrk -t2 -c64 -d5s -s benches/http/query.lua "http://127.0.0.1:$PORT" | grep '^{'
done
for fmt in csv ndjson; do
  t0=$(date +%s.%N)
  rows=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$PORT/api/v1/activity/export?format=$fmt" | wc -l)
  t1=$(date +%s.%N)
  python3 -c "print('{\"scenario\": \"export_$fmt\", \"rows\": $rows, \"seconds\": %.3f, \"rows_per_s\": %.0f}' % ($t1-$t0, $rows/($t1-$t0)))"
done
$L sse --subscribers 1000 --events 50
echo "{\"server_rss_kb\": $(awk '/VmRSS/{print $2}' /proc/$PID/status), \"server_peak_rss_kb\": $(awk '/VmHWM/{print $2}' /proc/$PID/status)}"
# The server trims its heap on a 5 s maintenance tick after appends.
sleep 6
echo "{\"server_rss_kb_6s_later\": $(awk '/VmRSS/{print $2}' /proc/$PID/status), \"anon_kb\": $(awk '/RssAnon/{print $2}' /proc/$PID/status), \"file_kb\": $(awk '/RssFile/{print $2}' /proc/$PID/status)}"
