#!/bin/sh
# Runs `istioctl validate -f FILE` and expects a non-zero exit and MESSAGE in its output.
# usage: expect_invalid.sh ISTIOCTL FILE MESSAGE
out=$("$1" validate -f "$2" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" -eq 0 ]; then
  echo "FAIL: istioctl validate exited 0 for $2" >&2
  exit 1
fi
if ! printf '%s\n' "$out" | grep -qF -- "$3"; then
  echo "FAIL: output lacks: $3" >&2
  exit 1
fi
