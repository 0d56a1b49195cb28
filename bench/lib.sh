# shellcheck shell=bash
# Shared by the bench scripts (sourced): a temp dir cleaned at exit, children stopped by process
# id, the peerbench backend (nginx, one worker, 200 with 1024 bytes), and a readiness wait.
# The caller sets SCRIPT (its name, for messages) before sourcing.

TMP=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

need_tools() {  # need_tools TOOL...: exits 2 naming the first one missing
  for tool in "$@"; do
    command -v "$tool" >/dev/null || { echo "$SCRIPT: $tool is missing" >&2; exit 2; }
  done
}

# start_backend PORT [PREFIX...]: nginx on 127.0.0.1:PORT, started through PREFIX (e.g. taskset);
# its master's pid goes to PIDS and BACKEND_PID.
start_backend() {
  local port=$1
  shift
  mkdir -p "$TMP/ngx/logs"
  local body
  body=$(head -c 1024 /dev/zero | tr '\0' x)
  cat >"$TMP/ngx/nginx.conf" <<NGX
daemon off; worker_processes 1; error_log $TMP/ngx/logs/error.log; pid $TMP/ngx/nginx.pid;
events { worker_connections 1024; }
http { access_log off;
  client_body_temp_path $TMP/ngx; proxy_temp_path $TMP/ngx; fastcgi_temp_path $TMP/ngx;
  uwsgi_temp_path $TMP/ngx; scgi_temp_path $TMP/ngx;
  server { listen 127.0.0.1:$port; keepalive_requests 100000000;
    location / { return 200 "$body"; } } }
NGX
  "$@" nginx -p "$TMP/ngx" -c "$TMP/ngx/nginx.conf" &
  BACKEND_PID=$!
  PIDS+=("$BACKEND_PID")
}

# wait_http URL PID [LOG [CURL_OPTION]]: polls URL until it answers (at most 60 s) while PID
# lives; exits 1 otherwise, with LOG (the process's output) on stderr. CURL_OPTION: e.g.
# --http2-prior-knowledge for a listener that speaks only h2c.
wait_http() {
  local opt=()
  if [ -n "${4:-}" ]; then opt=("$4"); fi
  for _ in $(seq 600); do
    curl -sk "${opt[@]}" -o /dev/null "$1" && return 0
    kill -0 "$2" 2>/dev/null || break
    sleep 0.1
  done
  echo "$SCRIPT: $1 did not answer" >&2
  if [ -n "${3:-}" ]; then cat "$3" >&2; fi
  exit 1
}
