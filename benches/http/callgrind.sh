#!/usr/bin/env bash
# Instructions per request of one server binary under callgrind: the
# measure behind the "where the time went" notes in benches/README.md,
# steadier than any rate on a shared 2-core machine.
#
# Usage: benches/http/callgrind.sh SERVER QUERY|ingest:BATCH [OUT] [N]
#   SERVER        the `actlog` binary to measure (an older build for an A/B)
#   QUERY         a GET path, e.g. '/api/v1/activity?limit=50'
#   ingest:BATCH  POST batches of BATCH events instead
#   OUT           callgrind output prefix (default target/callgrind/out)
#   N             records of the prepared log (default 1000000; see run.sh)
# The server runs under valgrind on a copy of the prepared log; 3 s of
# batched ingest then 3 s of the measured load warm it up, the counters are
# zeroed, wrk drives 4 connections for 8 s, and the counts are dumped. It
# prints wrk's line and the instructions per request, then
# `callgrind_annotate --inclusive=no OUT.1` shows where they went.
set -euo pipefail
cd "$(dirname "$0")/../.."
SERVER=$1
LOAD=$2
OUT=${3:-target/callgrind/out}
N=${4:-1000000}
PORT=${ACTLOG_BENCH_PORT:-8497}
for tool in valgrind callgrind_control wrk; do
  command -v "$tool" >/dev/null || { echo "needs $tool (apt-get install valgrind wrk)" >&2; exit 2; }
done
[ -d "target/bench-data/log-$N" ] || { echo "run benches/http/run.sh $N first (it prepares the log)" >&2; exit 2; }
mkdir -p "$(dirname "$OUT")"
rm -f "$OUT" "$OUT".*
DATA="target/bench-data/callgrind-$N"
rm -rf "$DATA"
cp -r "target/bench-data/log-$N" "$DATA"
rm -f "$DATA/LOCK"
TOKEN="actlog_bench_$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
ACTLOG_ADMIN_TOKEN="$TOKEN" ACTLOG_LOG=warn valgrind --tool=callgrind --callgrind-out-file="$OUT" \
  "$SERVER" serve --data "$DATA" --listen "127.0.0.1:$PORT" >/dev/null 2>"$OUT.log" &
PID=$!
trap 'kill -INT $PID 2>/dev/null || true; wait $PID 2>/dev/null || true' EXIT
for _ in $(seq 1 240); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break
  sleep 0.5
done
load() { # seconds
  case "$LOAD" in
    ingest:*) BATCH=${LOAD#ingest:} TOKEN=$TOKEN wrk -t1 -c4 -d"$1" -s benches/http/ingest.lua "http://127.0.0.1:$PORT" ;;
    *) QUERY="$LOAD" TOKEN=$TOKEN wrk -t1 -c4 -d"$1" -s benches/http/query.lua "http://127.0.0.1:$PORT" ;;
  esac
}
BATCH=100 TOKEN=$TOKEN wrk -t1 -c4 -d3s -s benches/http/ingest.lua "http://127.0.0.1:$PORT" >/dev/null
load 3s >/dev/null
callgrind_control -z "$PID" >/dev/null 2>&1
line=$(load 8s | grep '^{')
callgrind_control -d "$PID" >/dev/null 2>&1
echo "$line"
requests=$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["requests"])')
total=$(callgrind_annotate "$OUT.1" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",", "", $1); print $1}')
python3 -c "print('{\"instructions_per_request\": %d, \"requests\": %d, \"profile\": \"$OUT.1\"}' % ($total // $requests, $requests))"
