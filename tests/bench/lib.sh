# Shared by the bench scripts (sourced): installing the tools, free ports,
# the nginx backend and the nginx and HAProxy proxies in front of it,
# waiting for a server, starting `ten serve`, reading wrk's report, the CPU
# time and RSS of processes, and holding idle connections (hold.py).
# Every wait is bounded.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# bench_install TOOL...: installs from Debian those of the tools (each its
# own package) that are not on PATH.
bench_install() {
  local need=() t
  for t in "$@"; do command -v "$t" >/dev/null || need+=("$t"); done
  [ ${#need[@]} -eq 0 ] && return 0
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
}

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# backend_conf FILE PORT: an nginx config for one worker in the foreground
# answering a fixed 200 ("hello\n") on 127.0.0.1:PORT, run as a tenement
# instance; its pid file and error log sit beside FILE (FILE.pid, FILE.err).
backend_conf() {
  cat >"$1" <<CONF
worker_processes 1;
pid $1.pid;
error_log $1.err;
daemon off;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$2; location / { return 200 "hello\n"; } }
}
CONF
}

# wait_up URL [CURL_OPTION...]: polls URL until it answers 2xx, 10 s at
# most; returns 1 when it never does.
wait_up() {
  local url=$1 _
  shift
  for _ in $(seq 200); do
    curl -sf -o /dev/null "$@" "$url" && return 0
    sleep 0.05
  done
  return 1
}

# start_nginx_proxy CONF WORKERS PORT UPSTREAM [CERT KEY]: nginx with
# WORKERS workers proxying 127.0.0.1:PORT (TLS with CERT and KEY when given)
# to 127.0.0.1:UPSTREAM over kept-alive upstream connections; daemonised,
# its pid in CONF.pid. Waits until it answers.
start_nginx_proxy() {
  local conf=$1 workers=$2 port=$3 upstream=$4 listen scheme=http tls=""
  listen="127.0.0.1:$port reuseport"
  if [ $# -ge 6 ]; then
    listen="127.0.0.1:$port ssl reuseport"
    scheme=https
    tls="ssl_certificate $5; ssl_certificate_key $6; ssl_protocols TLSv1.2 TLSv1.3;"
  fi
  cat >"$conf" <<CONF
worker_processes $workers;
pid $conf.pid;
error_log $conf.err;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$upstream; keepalive 128; }
  server {
    listen $listen;
    $tls
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c "$conf"
  wait_up "$scheme://127.0.0.1:$port/" -k || { echo "nginx proxy did not come up" >&2; return 1; }
}

# stop_nginx_proxy CONF: stops the nginx started with CONF and waits (10 s
# at most) until it has removed its pid file.
stop_nginx_proxy() {
  local _
  kill "$(cat "$1.pid")"
  for _ in $(seq 200); do
    [ -f "$1.pid" ] || return 0
    sleep 0.05
  done
}

# start_haproxy CONF THREADS PORT UPSTREAM [PEM]: HAProxy with THREADS
# threads proxying 127.0.0.1:PORT (TLS with the certificate and key in PEM
# when given) to 127.0.0.1:UPSTREAM, reusing server connections; in the
# background in a session of its own (as nginx's daemon is), its pid in
# HAPID. Waits until it answers.
start_haproxy() {
  local conf=$1 threads=$2 port=$3 upstream=$4 bind scheme=http
  bind="127.0.0.1:$port"
  if [ $# -ge 5 ]; then
    bind="$bind ssl crt $5 alpn http/1.1"
    scheme=https
  fi
  cat >"$conf" <<CONF
global
  nbthread $threads
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind $bind
  default_backend b
backend b
  server s1 127.0.0.1:$upstream
CONF
  setsid haproxy -f "$conf" -db >/dev/null 2>&1 &
  HAPID=$!
  wait_up "$scheme://127.0.0.1:$port/" -k || { echo "haproxy did not come up" >&2; return 1; }
}

stop_haproxy() {
  kill "$HAPID"
  wait "$HAPID" 2>/dev/null || true
  HAPID=
}

# serve_ten TEN CONFIG DATA PORT LOG: starts `ten serve` on 127.0.0.1:PORT in
# the background, sets TENPID, and waits (10 s at most) until it listens;
# returns 1 with its log on stderr when it does not.
serve_ten() {
  "$1" serve --config "$2" --data-dir "$3" --port "$4" --bind 127.0.0.1 >"$5" 2>&1 &
  TENPID=$!
  for _ in $(seq 200); do
    grep -q "listening on" "$5" 2>/dev/null && return 0
    sleep 0.05
  done
  cat "$5" >&2
  return 1
}

# parse_wrk: reads a `wrk --latency` report on stdin and prints: requests
# answered, requests/s, p50 ms, p99 ms, non-2xx answers, socket errors.
parse_wrk() {
  python3 -c '
import re, sys
text = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
done = re.search(r"(\d+) requests in", text)
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
print("%s %s %.3f %.3f %s %d" % (done.group(1) if done else "0", rps.group(1) if rps else "nan",
      ms("50%"), ms("99%"), errors.group(1) if errors else "0",
      sum(int(g) for g in sock.groups()) if sock else 0))
'
}

# cpu_ticks PID...: utime+stime of the processes (all their threads), in
# clock ticks.
cpu_ticks() {
  local total=0 p f
  for p in "$@"; do
    # Fields after "pid (comm) ": f[0] is the state, f[11] utime, f[12] stime.
    read -ra f < <(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# rss_kb PID...: the processes' resident memory together, in KiB.
rss_kb() {
  local total=0 p
  for p in "$@"; do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

# hold_open PORT N HOSTHEADER [--tls]: opens N idle keep-alive connections
# to 127.0.0.1:PORT (hold.py, as the coprocess HOLDER) and returns once they
# are all open; hold_close closes them and waits for hold.py to end.
hold_open() {
  local tls=()
  [ "${4:-}" = --tls ] && tls=(--tls)
  coproc HOLDER { timeout 300 python3 "$BENCH_DIR/hold.py" "${tls[@]}" 127.0.0.1 "$1" "$2" "$3"; }
  read -r -t 240 _ <&"${HOLDER[0]}" || true
}
hold_close() {
  echo >&"${HOLDER[1]}"
  read -r -t 30 _ <&"${HOLDER[0]}" || true
  wait "$HOLDER_PID" 2>/dev/null || true
}
