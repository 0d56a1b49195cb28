#!/usr/bin/env bash
# make bench: istio-proxy beside HAProxy and nginx in ../shared/peerbench (same machine, same
# run). Extra arguments and knobs (ROUNDS, TESTS, LAYOUT, ...) pass through to peerbench.
#   bench/peerbench.sh [build-dir]
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PEERBENCH=${PEERBENCH:-$ROOT/../shared/peerbench}
[ -x "$PEERBENCH" ] || { echo "peerbench not found at $PEERBENCH (set PEERBENCH=...)"; exit 2; }
export PROXY_NAME=${PROXY_NAME:-istio-proxy}
export PROXY_CMD="$ROOT/bench/run-proxy.sh $BUILD/bin/istio-proxy {LISTEN_PORT} {UPSTREAM_PORT} {TMPDIR}"
RUN="$ROOT/bench/run-proxy.sh $BUILD/bin/istio-proxy"
export PROXY_TLS_CMD="$RUN {LISTEN_PORT} {UPSTREAM_PORT} {TMPDIR} tls {CERT} {KEY}"
export PROXY_MTLS_IN_CMD="$RUN {LISTEN_PORT} {UPSTREAM_PORT} {TMPDIR} mtls-in {CERT} {KEY} {CA}"
export PROXY_MTLS_OUT_CMD="$RUN {LISTEN_PORT} {UPSTREAM_PORT} {TMPDIR} mtls-out {CLIENT_CERT} {CLIENT_KEY} {CA} {SNI}"
export TESTS=${TESTS:-"h1 h2c tls tlsnew mesh fixed"}
# Every HTTP listener also takes h2c with prior knowledge (the connection preface).
export PROXY_H2C=1
exec "$PEERBENCH" "$@"
