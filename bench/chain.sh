#!/usr/bin/env bash
# Where the CPU of a request goes along the chain client -> proxy -> backend, istio-proxy and
# HAProxy side by side, everything on one CPU as peerbench's layout=one. There req/s is
# 1e6 / (client + proxy + backend CPU per request), so this splits peerbench's ratio into its
# parts: each process's user and system time per request (from /proc, over a fixed number of
# requests) and the proxy's voluntary and involuntary context switches (a proxy that sleeps
# more is woken more, and each wake-up can cut a peer's batch of sends short).
#   bench/chain.sh [build-dir] [h1|h2c] [requests] [rounds]
# The client is h2load (h1: --h1 -c64; h2c: -c16 -m4), the backend peerbench's nginx reply (200,
# 1024 bytes), istio-proxy configured by run-proxy.sh and HAProxy as peerbench configures it (one
# thread, http-reuse always). Ports: BASE_PORT (18280) .. +2, on 127.0.0.1. CPU: CHAIN_CPU (the
# last one). Everything it starts is stopped by process id at exit.
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
MODE=${2:-h2c}
N=${3:-200000}
ROUNDS=${4:-3}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASE_PORT:-18280}
BACKEND=$BASE OURS=$((BASE + 1)) HA=$((BASE + 2))
CPU=${CHAIN_CPU:-$(($(nproc) - 1))}
PIN=(taskset -c "$CPU")
SCRIPT=chain.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_tools nginx haproxy h2load curl taskset
case "$MODE" in
  h1) LOAD=(h2load --h1 -c64 -t1) HA_BIND="" HA_CURL="" ;;
  h2c) LOAD=(h2load -c16 -m4 -t1) HA_BIND=" proto h2" HA_CURL=--http2-prior-knowledge ;;
  *) echo "chain.sh: mode h1 or h2c" >&2; exit 2 ;;
esac

start_backend "$BACKEND" "${PIN[@]}"
"${PIN[@]}" "$ROOT/bench/run-proxy.sh" "$BUILD/bin/istio-proxy" "$OURS" "$BACKEND" "$TMP" \
  >"$TMP/istio-proxy.log" 2>&1 &
OURS_PID=$!
PIDS+=("$OURS_PID")
cat >"$TMP/haproxy.cfg" <<CFG
global
  nbthread 1
  maxconn 8000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  timeout http-keep-alive 300s
frontend bench
  bind 127.0.0.1:$HA$HA_BIND
  default_backend app
backend app
  http-reuse always
  server app 127.0.0.1:$BACKEND maxconn 1000
CFG
"${PIN[@]}" haproxy -f "$TMP/haproxy.cfg" -db >"$TMP/haproxy.log" 2>&1 &
HA_PID=$!
PIDS+=("$HA_PID")
wait_http "http://127.0.0.1:$BACKEND/" "$BACKEND_PID"
wait_http "http://127.0.0.1:$OURS/" "$OURS_PID" "$TMP/istio-proxy.log"
wait_http "http://127.0.0.1:$HA/" "$HA_PID" "$TMP/haproxy.log" "$HA_CURL"
NGINX_WORKER=$(pgrep -P "$BACKEND_PID" | head -1)
[ -n "$NGINX_WORKER" ] || { echo "chain.sh: no nginx worker" >&2; exit 1; }

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }  # user and system clock ticks
switches() { cat /proc/"$1"/task/*/status | awk '/^voluntary_ctxt/{v+=$2} /^nonvoluntary_ctxt/{i+=$2} END{print v, i}'; }
HZ=$(getconf CLK_TCK)

echo "chain.sh: $MODE, $N requests per run, $ROUNDS rounds, all on CPU $CPU; CPU us per request"
printf '%-12s %9s %8s %8s %8s %8s %8s %8s %9s %9s\n' target req/s client backend p.user p.sys proxy chain vol/kreq inv/kreq
for _ in $(seq "$ROUNDS"); do
  for target in istio-proxy haproxy; do
    if [ "$target" = istio-proxy ]; then pid=$OURS_PID port=$OURS; else pid=$HA_PID port=$HA; fi
    url="http://127.0.0.1:$port/"
    "${PIN[@]}" "${LOAD[@]}" -n 2000 "$url" >/dev/null  # warm: connections, caches, HPACK tables
    read -r pu0 ps0 < <(ticks "$pid")
    read -r bu0 bs0 < <(ticks "$NGINX_WORKER")
    read -r v0 i0 < <(switches "$pid")
    TIMEFORMAT='%U %S'
    { time "${PIN[@]}" "${LOAD[@]}" -n "$N" "$url" >"$TMP/load.out"; } 2>"$TMP/client.time"
    read -r pu1 ps1 < <(ticks "$pid")
    read -r bu1 bs1 < <(ticks "$NGINX_WORKER")
    read -r v1 i1 < <(switches "$pid")
    grep -q " $N succeeded" "$TMP/load.out" || { echo "chain.sh: $target: not every request succeeded" >&2; cat "$TMP/load.out" >&2; exit 1; }
    rps=$(awk '/^finished in/{print $4}' "$TMP/load.out")
    read -r cu cs <"$TMP/client.time"
    awk -v n="$N" -v hz="$HZ" -v t="$target" -v rps="$rps" -v cu="$cu" -v cs="$cs" \
      -v pu=$((pu1 - pu0)) -v ps=$((ps1 - ps0)) -v bk=$((bu1 - bu0 + bs1 - bs0)) \
      -v vol=$((v1 - v0)) -v inv=$((i1 - i0)) 'BEGIN {
        us = 1e6 / n; client = (cu + cs) * us; backend = bk / hz * us
        pu_us = pu / hz * us; ps_us = ps / hz * us
        printf "%-12s %9.0f %8.2f %8.2f %8.2f %8.2f %8.2f %8.2f %9.1f %9.1f\n", t, rps, client, backend,
               pu_us, ps_us, pu_us + ps_us, client + backend + pu_us + ps_us, vol * 1000 / n, inv * 1000 / n }'
  done
done
