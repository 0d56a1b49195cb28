#!/usr/bin/env bash
# make demo: Bookinfo on this machine, a sidecar beside every pod, pilot pushing Istio's config:
# `istioctl local up samples/bookinfo`. Shows a few of Istio's traffic tasks, then stays up
# until Ctrl-C, when istioctl stops everything it started, by process id.
set -euo pipefail
BUILD=${1:-build}
BIN="$(cd "$BUILD/bin" && pwd)"
STATE=$(mktemp -d /tmp/mesh-demo.XXXXXX)
UP=
cleanup() {
  trap - EXIT INT TERM
  if [ -n "$UP" ]; then kill -TERM "$UP" 2>/dev/null || true; wait "$UP" 2>/dev/null || true; fi
  rm -rf "$STATE"
}
trap cleanup EXIT INT TERM

"$BIN/istioctl" local up samples/bookinfo --state-dir "$STATE" &
UP=$!
# istioctl writes state.json once every sidecar has pilot's config and every app listens.
for _ in $(seq 1 300); do
  [ -s "$STATE/state.json" ] && break
  kill -0 "$UP" 2>/dev/null || { echo "demo: istioctl local up failed"; exit 1; }
  sleep 0.1
done
[ -s "$STATE/state.json" ] || { echo "demo: the mesh did not come up in 30 s"; exit 1; }
ENTRY=$(grep -o '"entry":"[^"]*' "$STATE/state.json" | cut -d'"' -f4)
PILOT=127.0.0.1:$(grep -o '"http":[0-9]*' "$STATE/state.json" | head -1 | cut -d: -f2)
reviews() {  # reviews() [curl args]: which reviews pod served each of 10 pages
  for _ in $(seq 1 10); do curl -s "$@" "$ENTRY" | grep -o 'reviews-v[123]-[0-9]*' || echo "(no reviews)"; done |
    sort | uniq -c | sed 's/^/    /'
}
version() { curl -s "http://$PILOT/debug/configz" | grep -o '"version":"[0-9]*"' | head -1 | cut -d'"' -f4; }
# apply FILE: istioctl local apply, then wait until pilot loaded a new config version and every
# sidecar has it (pilot's /debug/syncz), polling every 0.1 s for at most 10 s.
apply() {
  local before; before=$(version)
  "$BIN/istioctl" local apply --state-dir "$STATE" -f "samples/bookinfo/networking/$1" | sed 's/^/    /'
  for _ in $(seq 1 100); do
    local want; want=$(version)
    if [ "$want" != "$before" ]; then
      local s; s=$(curl -s "http://$PILOT/debug/syncz")
      local n; n=$(grep -o '"config_version":"[0-9]*"' <<<"$s" | grep -c "\"$want\"" || true)
      [ "$n" = "$(grep -o '"proxy":' <<<"$s" | wc -l)" ] && ! grep -q STALE <<<"$s" && return 0
    fi
    sleep 0.1
  done
  echo "    (not on every sidecar after 10 s: see istioctl proxy-status --pilot $PILOT)"
}

echo
echo "== All traffic to v1 (virtual-service-all-v1.yaml):"
reviews
echo "== Reviews v2 for user jason (virtual-service-reviews-test-v2.yaml):"
apply virtual-service-reviews-test-v2.yaml
echo "  as jason:"; reviews -H 'Cookie: user=jason'
echo "  anonymous:"; reviews
echo "== 50% to v3 (virtual-service-reviews-50-v3.yaml):"
apply virtual-service-reviews-50-v3.yaml
reviews
apply virtual-service-all-v1.yaml >/dev/null
cat <<MSG

Bookinfo is up: open $ENTRY (through the ingress gateway).
Try Istio's tasks (files in samples/bookinfo/networking):
  $BIN/istioctl local apply --state-dir $STATE -f samples/bookinfo/networking/virtual-service-reviews-v3.yaml
  $BIN/istioctl local apply --state-dir $STATE -f samples/bookinfo/networking/virtual-service-ratings-test-abort.yaml
  $BIN/istioctl proxy-status --pilot $PILOT
  $BIN/istioctl proxy-config routes productpage-v1 --pilot $PILOT
Logs: $STATE/logs. Press Ctrl-C to stop.
MSG
wait "$UP" || true
UP=
