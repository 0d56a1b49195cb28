#!/usr/bin/env bash
# Runs every libFuzzer target of a MESH_FUZZ build for a bounded time, starting from its seeds in
# test/fuzz/corpus/<name>/ (and test/fuzz/<name>.dict when there is one). New inputs go to a
# temporary directory, never into the repo.
#   scripts/run-fuzz.sh <build-fuzz-dir> [seconds per target, default 60]
#   FUZZ_TARGETS="http1_request_fuzz ..."  run only these; FUZZ_KEEP=1  keep the temporary dir
# Exits non-zero if any target crashes, leaks, times out or exceeds the RSS limit; the input that
# did it is kept and its path printed.
set -euo pipefail

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
  echo "usage: $0 <build-fuzz-dir> [seconds per target]" >&2
  exit 2
fi
build=$1
secs=${2:-60}
repo=$(cd "$(dirname "$0")/.." && pwd)

targets=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
  for name in $FUZZ_TARGETS; do targets+=("$build/fuzz/$name"); done
else
  shopt -s nullglob
  targets=("$build"/fuzz/*_fuzz)
  shopt -u nullglob
fi
if [ ${#targets[@]} -eq 0 ]; then
  echo "run-fuzz: no fuzz targets in $build/fuzz (build the fuzz_targets target first)" >&2
  exit 2
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/mesh-fuzz.XXXXXX")
failed=()
for bin in "${targets[@]}"; do
  name=$(basename "$bin")
  seeds="$repo/test/fuzz/corpus/${name%_fuzz}"
  dict="$repo/test/fuzz/${name%_fuzz}.dict"
  if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
    echo "run-fuzz: $name: missing binary $bin or seed corpus $seeds" >&2
    failed+=("$name")
    continue
  fi
  out="$work/$name"
  mkdir -p "$out/corpus" "$out/artifacts"
  args=(-max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
        -artifact_prefix="$out/artifacts/")
  if [ -f "$dict" ]; then args+=(-dict="$dict"); fi
  echo "== $name: ${secs}s, seeds $seeds, new inputs $out/corpus"
  # The first corpus directory receives new inputs; the seeds are only read.
  if "$bin" "${args[@]}" "$out/corpus" "$seeds" >"$out/log" 2>&1; then
    grep -E '^(#[0-9]+[[:space:]]+(INITED|DONE)|stat::|Done )' "$out/log" || true
  else
    failed+=("$name")
    tail -n 60 "$out/log"
    echo "run-fuzz: $name FAILED; the input that did it:"
    ls -d "$out"/artifacts/* 2>/dev/null || true
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "run-fuzz: failed: ${failed[*]} (kept $work)" >&2
  exit 1
fi
if [ -n "${FUZZ_KEEP:-}" ]; then
  echo "run-fuzz: all targets passed; new inputs kept in $work"
else
  rm -rf "$work"
  echo "run-fuzz: all targets passed"
fi
