#!/usr/bin/env bash
# User-space instructions per request of istio-proxy, counted by callgrind: a figure that, unlike
# req/s or CPU time, does not move with other tenants of a shared VM (use it to compare two
# builds; peerbench for the side-by-side with HAProxy and nginx).
#   bench/instructions.sh [build-dir] [h1|h2c|tls] [requests]
# PROXY_TLS_MAX=TLSv1_2 (run-proxy.sh) caps the tls mode at TLS 1.2.
# Starts its own nginx backend (the peerbench reply: 200 with 1024 bytes), runs the proxy (one
# worker, bench/run-proxy.sh's config) under valgrind twice, 2000 warm-up requests each, the
# second with `requests` more (h2load on one connection set: --h1 -c64, or -c16 -m4), and prints
# (instructions of the second - of the first) / requests. Ports: BASE_PORT (18180) and +1.
# Everything it starts is stopped by process id at exit.
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
MODE=${2:-h1}
N=${3:-20000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BASE=${BASE_PORT:-18180}
BACKEND=$BASE LISTEN=$((BASE + 1))
SCRIPT=instructions.sh
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
need_tools valgrind nginx h2load openssl curl
start_backend "$BACKEND"

SCHEME=http ARGS=()
case "$MODE" in
  h1) LOAD=(h2load --h1 -c64 -t1) ;;
  h2c) LOAD=(h2load -c16 -m4 -t1) ;;
  tls)
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost \
      -keyout "$TMP/key.pem" -out "$TMP/cert.pem" 2>/dev/null
    SCHEME=https ARGS=(tls "$TMP/cert.pem" "$TMP/key.pem")
    LOAD=(h2load --h1 -c64 -t1) ;;
  *) echo "instructions.sh: mode h1, h2c or tls (PROXY_TLS_MAX=TLSv1_2: TLS 1.2)" >&2; exit 2 ;;
esac
# The proxy's config file, written by run-proxy.sh (its exec is replaced by `true`).
"$ROOT/bench/run-proxy.sh" /bin/true "$LISTEN" "$BACKEND" "$TMP" "${ARGS[@]}"
CFG=$(ls "$TMP"/istio-proxy-*.yaml)
URL="$SCHEME://127.0.0.1:$LISTEN/"

COUNT=0
count() {  # count EXTRA: COUNT = instructions after 2000 + EXTRA requests
  local out="$TMP/cg.out"
  valgrind --tool=callgrind --callgrind-out-file="$out" "$BUILD/bin/istio-proxy" --config "$CFG" \
    --concurrency 1 --log-level warning >"$TMP/valgrind.log" 2>&1 &
  local v=$!
  PIDS+=("$v")
  wait_http "$URL" "$v" "$TMP/valgrind.log"
  "${LOAD[@]}" -n 2000 "$URL" >/dev/null
  if [ "$1" -gt 0 ]; then "${LOAD[@]}" -n "$1" "$URL" | grep -q "$1 succeeded"; fi
  kill -INT "$v"
  wait "$v" 2>/dev/null || true
  COUNT=$(awk '/^summary:/{print $2}' "$out")
}
count 0
A=$COUNT
count "$N"
B=$COUNT
echo "istio-proxy $MODE: $(( (B - A) / N )) user-space instructions per request (callgrind, $N requests)"
