#!/usr/bin/env bash
# make demo: two versions of the httpbin sample behind istio-proxy, on loopback.
# Stays up until Ctrl-C, then stops everything it started, by process id.
set -euo pipefail
BUILD=${1:-build}
BIN="$BUILD/bin"
RUN=$(mktemp -d /tmp/mesh-demo.XXXXXX)
PIDS=()
cleanup() {
  trap - EXIT INT TERM
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$RUN"
  echo "demo stopped."
}
trap cleanup EXIT INT TERM

wait_file() {  # wait_file FILE PID: until FILE exists, or fail if PID died
  for _ in $(seq 1 100); do
    [ -s "$1" ] && return 0
    kill -0 "$2" 2>/dev/null || { echo "demo: process $2 exited; its log:"; cat "$RUN"/*.log; exit 1; }
    sleep 0.1
  done
  echo "demo: timed out waiting for $1"; exit 1
}

"$BIN/httpbin" --listen 127.0.0.1:9081 --instance httpbin-v1 --version v1 \
  --port-file "$RUN/v1.port" >"$RUN/httpbin-v1.log" 2>&1 &
PIDS+=($!); wait_file "$RUN/v1.port" $!
"$BIN/httpbin" --listen 127.0.0.1:9082 --instance httpbin-v2 --version v2 \
  --port-file "$RUN/v2.port" >"$RUN/httpbin-v2.log" 2>&1 &
PIDS+=($!); wait_file "$RUN/v2.port" $!
"$BIN/istio-proxy" --config samples/proxy/demo.yaml --port-file "$RUN/proxy.ports" \
  >"$RUN/istio-proxy.log" 2>&1 &
PROXY=$!; PIDS+=($PROXY); wait_file "$RUN/proxy.ports" $PROXY

echo
echo "== 20 requests through istio-proxy (80% v1, 20% v2):"
for _ in $(seq 1 20); do curl -s http://127.0.0.1:8080/ ; done | grep -o '"version":"v[0-9]"' | sort | uniq -c
echo "== as user jason (always v2):"
curl -s -H 'end-user: jason' http://127.0.0.1:8080/
echo "== istio_requests_total by destination_version:"
curl -s http://127.0.0.1:15090/stats/prometheus | grep '^istio_requests_total' |
  sed -E 's/.*destination_version="([^"]*)".*response_code="([^"]*)".* ([0-9]+)$/  version=\1 code=\2 requests=\3/'
cat <<MSG

istio-proxy is serving on http://127.0.0.1:8080 (backends: httpbin v1 on :9081, v2 on :9082).
Try:
  curl -i http://127.0.0.1:8080/headers              # see x-request-id, traceparent, b3 added
  curl -H 'end-user: jason' http://127.0.0.1:8080/   # header-based routing to v2
  curl http://127.0.0.1:8080/v2/status/418           # prefix rewrite to v2
  curl http://127.0.0.1:8080/delay/5000              # 504 after the route's 3 s timeout
Metrics:   http://127.0.0.1:15090/stats/prometheus
Admin API: http://127.0.0.1:15000/ (stats, clusters, config_dump, listeners, ready;
           POST /reload after editing samples/proxy/demo.yaml, POST /logging?level=debug)
Logs:      $RUN/*.log
Press Ctrl-C to stop.
MSG
wait "$PROXY"
