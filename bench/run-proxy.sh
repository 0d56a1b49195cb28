#!/usr/bin/env bash
# Starts istio-proxy the way peerbench expects: one listener on LISTEN_PORT in front of one
# upstream on UPSTREAM_PORT, one worker, Istio metrics on, access log off.
#   bench/run-proxy.sh <istio-proxy> <listen-port> <upstream-port> <tmpdir> [MODE ARGS...]
# MODE (default plain):
#   plain                          plaintext HTTP in, plaintext HTTP to the upstream (h1, h2c, fixed)
#   tls CERT KEY                   TLS terminated on the listener, plaintext upstream (tls, tlsnew)
#   mtls-in CERT KEY CA            mTLS listener (client certificate required, verified against CA),
#                                  plaintext upstream: the server-side sidecar of the mesh group, an
#                                  INBOUND listener as Istio's (it reads the client sidecar's
#                                  x-envoy-peer-metadata and reports as the destination; it does not
#                                  add metadata exchange headers towards its app)
#   mtls-out CERT KEY CA SNI       plaintext listener, mTLS to the upstream (client CERT/KEY, the
#                                  server's chain verified against CA): the client-side sidecar
# peerbench's certificates carry DNS SANs (no SPIFFE ids), so mtls-out verifies the chain only;
# the mesh's own SAN check (subjectAltNames) costs one string compare per handshake.
# PROXY_TLS_MAX=TLSv1_2 caps every TLS mode at TLS 1.2 (default: TLS 1.3, as Istio's mesh). For a
# like-for-like row beside peerbench's nginx 1.22, whose default ssl_protocols and
# proxy_ssl_protocols stop at TLS 1.2 (HAProxy 2.6 negotiates TLS 1.3 there).
set -euo pipefail
PROXY=$1 LISTEN=$2 UPSTREAM=$3 DIR=$4
MODE=${5:-plain}
LISTENER_TLS="" LISTENER_DIR="" CLUSTER_TLS="" NAME=bench
MAXV=""
if [ -n "${PROXY_TLS_MAX:-}" ]; then MAXV=", maxVersion: $PROXY_TLS_MAX"; fi
case "$MODE" in
  plain) ;;
  tls)
    LISTENER_TLS="  tls: {certificateChain: \"$6\", privateKey: \"$7\"$MAXV}"
    NAME=bench-tls ;;
  mtls-in)
    LISTENER_TLS="  tls: {certificateChain: \"$6\", privateKey: \"$7\", trustedCa: \"$8\", requireClientCertificate: true$MAXV}"
    LISTENER_DIR="  direction: INBOUND"
    NAME=bench-mtls-in ;;
  mtls-out)
    CLUSTER_TLS="  tls: {certificateChain: \"$6\", privateKey: \"$7\", trustedCa: \"$8\", sni: \"$9\"$MAXV}"
    NAME=bench-mtls-out ;;
  *) echo "run-proxy.sh: unknown mode '$MODE' (plain, tls, mtls-in, mtls-out)" >&2; exit 2 ;;
esac
CFG="$DIR/istio-proxy-$NAME-$LISTEN.yaml"
cat >"$CFG" <<YAML
node: {id: sidecar~127.0.0.1~$NAME.default, workloadName: $NAME, namespace: default,
       labels: {app: bench, version: v1}}
admin: {address: "127.0.0.1:0", prometheusAddress: "127.0.0.1:0", healthAddress: "127.0.0.1:0"}
listeners:
- name: bench
  address: 127.0.0.1:$LISTEN
  http: {routeConfigName: bench}
$LISTENER_DIR
$LISTENER_TLS
routeConfigs:
- name: bench
  virtualHosts:
  - name: backend
    domains: ["*"]
    routes: [{match: {prefix: /}, route: {cluster: backend}}]
clusters:
- name: backend
  service: {host: backend.default.svc.cluster.local}
$CLUSTER_TLS
  endpoints:
  - {address: 127.0.0.1, port: $UPSTREAM, workload: {name: backend, namespace: default, labels: {app: backend, version: v1}}}
YAML
exec "$PROXY" --config "$CFG" --concurrency 1 --log-level warning
