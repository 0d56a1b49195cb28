#!/usr/bin/env bash
# Starts istio-proxy the way peerbench expects: a plaintext HTTP/1.1 listener on LISTEN_PORT in
# front of one upstream on UPSTREAM_PORT, one worker, Istio metrics on, access log off.
#   bench/run-proxy.sh <istio-proxy> <listen-port> <upstream-port> <tmpdir>
set -euo pipefail
PROXY=$1 LISTEN=$2 UPSTREAM=$3 DIR=$4
CFG="$DIR/istio-proxy-$LISTEN.yaml"
cat >"$CFG" <<YAML
node: {id: sidecar~127.0.0.1~bench.default, workloadName: bench, namespace: default,
       labels: {app: bench, version: v1}}
admin: {address: "127.0.0.1:0", prometheusAddress: "127.0.0.1:0", healthAddress: "127.0.0.1:0"}
listeners:
- name: bench
  address: 127.0.0.1:$LISTEN
  http: {routeConfigName: bench}
routeConfigs:
- name: bench
  virtualHosts:
  - name: backend
    domains: ["*"]
    routes: [{match: {prefix: /}, route: {cluster: backend}}]
clusters:
- name: backend
  service: {host: backend.default.svc.cluster.local}
  endpoints:
  - {address: 127.0.0.1, port: $UPSTREAM, workload: {name: backend, namespace: default, labels: {app: backend, version: v1}}}
YAML
exec "$PROXY" --config "$CFG" --concurrency 1 --log-level warning
