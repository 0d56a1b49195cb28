#!/usr/bin/env bash
# make bench-pilot: pilot with many proxies (bench/pilot_scale.cc), run with the default debounce
# (100 ms, counted inside the figures), again with DEBOUNCE2 (default 10 ms), and with DEBOUNCE2
# and a Sidecar per namespace. Knobs pass
# through as pilot_scale flags, e.g. `bench/pilot-scale.sh build --proxies 200 --services 500`.
#   bench/pilot-scale.sh [build-dir] [pilot_scale flags...]
# On a shared machine, run it under the build lock: flock /tmp/mesh-build.lock make bench-pilot
set -euo pipefail
BUILD=$(cd "${1:-build}" && pwd)
shift || true
DEBOUNCE2=${DEBOUNCE2:-10}
# Each proxy is one TCP connection: pilot and this process each hold one fd per proxy.
ulimit -n "$(ulimit -Hn)"
for debounce in 100 "$DEBOUNCE2"; do
  "$BUILD/bin/pilot_scale" --pilot "$BUILD/bin/pilot" --debounce-ms "$debounce" "$@"
done
# The same mesh with a Sidecar per namespace: each proxy's config is ~10x smaller and a change
# concerns one namespace's proxies (what the push volume, not pilot's CPU, costs).
"$BUILD/bin/pilot_scale" --pilot "$BUILD/bin/pilot" --debounce-ms "$DEBOUNCE2" --sidecar "$@"
