#!/usr/bin/env bash
# Installs the Debian 12 packages this project needs, and only those that are missing.
#   scripts/install-deps.sh            build + test toolchain and libraries
#   scripts/install-deps.sh bench      adds the peer proxies and load generators for bench/
#   scripts/install-deps.sh fuzz       adds clang-14 and its sanitizer runtime for libFuzzer builds
set -euo pipefail

base=(g++ cmake ninja-build pkgconf ccache mold make
      libboost1.81-dev protobuf-compiler libprotobuf-dev
      libyaml-cpp-dev libspdlog-dev libfmt-dev libcli11-dev libre2-dev
      libgtest-dev libgmock-dev liburing-dev
      libgrpc++-dev protobuf-compiler-grpc libc-ares-dev libssl-dev
      libnghttp2-dev  # HTTP/2 in istio-proxy (downstream codec)
      prometheus  # the e2e tests start their own Prometheus server to scrape the mesh
      iptables iproute2 util-linux  # the capture test: nat rules, network namespaces, setpriv
      curl nghttp2-client)  # real HTTP/2 clients in the tests (curl --http2, h2load)
bench=(nginx haproxy wrk nghttp2-client curl openssl iproute2 util-linux procps valgrind)
fuzz=(clang-14 libclang-rt-14-dev)

want=("${base[@]}")
for extra in "$@"; do
  case "$extra" in
    bench) want+=("${bench[@]}") ;;
    fuzz) want+=("${fuzz[@]}") ;;
    *) echo "install-deps: unknown group '$extra' (bench, fuzz)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system-wide Prometheus on :9090 when it installs one; the tests run their own
# on a free port, so the one we just installed is stopped and left disabled.
if printf '%s\n' "${missing[@]}" | grep -qx prometheus && [ -d /run/systemd/system ]; then
  $SUDO systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
