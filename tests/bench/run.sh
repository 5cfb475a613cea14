#!/usr/bin/env bash
# make bench: tenement against nginx and HAProxy proxying the same backend on
# the same machine, in one run, printed as a markdown table with ratios.
#
# The backend is one nginx worker answering a fixed 200. It runs as a
# tenement instance (port_range pinned to one port), and nginx and HAProxy
# proxy to that same port, so every proxy measures against the same process.
# Rounds are short and interleaved so drift on a shared box hits all alike.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
HOLD_COUNTS=${HOLD_COUNTS:-"2000 5000"}
cd "$(dirname "$0")/../.."
TOP=$PWD
TEN=$TOP/target/release/ten

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -x "$TEN" ] || cargo build --release

ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/ten-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [ -n "${TENPID:-}" ] && kill "$TENPID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
BACKEND=$(free_port)
HOST_HEADER="main.bench.localhost"

cat >"$WORK/backend.conf" <<CONF
worker_processes 1;
pid $WORK/backend.pid;
error_log $WORK/backend.err;
daemon off;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$BACKEND; location / { return 200 "hello\n"; } }
}
CONF

cat >"$WORK/tenement.toml" <<CONF
[settings]
data_dir = "$WORK/data"
listen = "127.0.0.1:0"
port_range = [$BACKEND, $BACKEND]
workers = 1
[service.bench]
command = "nginx -c $WORK/backend.conf"
[instances]
bench = ["main"]
CONF

start_ten() { # workers
  sed -i "s/^workers = .*/workers = $1/" "$WORK/tenement.toml"
  TEN_LOG=warn "$TEN" serve --config "$WORK/tenement.toml" --port "$TENPORT" 2>>"$WORK/ten.err" &
  TENPID=$!
  for _ in $(seq 200); do
    if curl -sf -o /dev/null -H "Host: $HOST_HEADER" "http://127.0.0.1:$TENPORT/"; then return 0; fi
    sleep 0.05
  done
  echo "ten did not come up:" >&2; cat "$WORK/ten.err" >&2; exit 1
}
stop_ten() {
  kill "$TENPID"; wait "$TENPID" 2>/dev/null || true; TENPID=
}
start_nginx() { # workers
  cat >"$WORK/nginx.conf" <<CONF
worker_processes $1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BACKEND; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINXPORT reuseport;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c "$WORK/nginx.conf"
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$NGINXPORT/" && return 0; sleep 0.05; done
  echo "nginx proxy did not come up" >&2; exit 1
}
stop_nginx() { kill "$(cat "$WORK/nginx.pid")"; while [ -f "$WORK/nginx.pid" ]; do sleep 0.05; done; }
start_haproxy() { # threads
  cat >"$WORK/haproxy.cfg" <<CONF
global
  nbthread $1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$HAPORT
  default_backend b
backend b
  server s1 127.0.0.1:$BACKEND
CONF
  haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 &
  HAPID=$!
  for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$HAPORT/" && return 0; sleep 0.05; done
  echo "haproxy did not come up" >&2; exit 1
}
stop_haproxy() { kill "$HAPID"; wait "$HAPID" 2>/dev/null || true; }

# wrk prints requests/s and the latency distribution; we keep rps, p50, p99 (ms).
run_wrk() { # port
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $HOST_HEADER" "http://127.0.0.1:$1/" 2>&1 | python3 -c '
import re, sys
text = sys.stdin.read()
def ms(label):
    m = re.search(r"^\s*" + label + r"\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not m:
        return float("nan")
    v, unit = float(m.group(1)), m.group(2)
    return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
print("%s %.3f %.3f %s" % (rps.group(1) if rps else "nan", ms("50%"), ms("99%"), errors.group(1) if errors else "0"))
'
}

rss_kb() { # pids...
  local total=0
  for p in "$@"; do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

TENPORT=$(free_port); NGINXPORT=$(free_port); HAPORT=$(free_port)
echo "tenement bench: $(nproc) cores, $(date -u +%Y-%m-%d), wrk -t2 -c$CONNS -d${DURATION}s x $ROUNDS rounds" >&2

results="$WORK/results"
: >"$results"
for W in 1 2; do
  start_ten "$W"
  start_nginx "$W"
  start_haproxy "$W"
  for r in $(seq "$ROUNDS"); do
    for target in direct nginx haproxy ten; do
      case $target in
        direct) port=$BACKEND ;; nginx) port=$NGINXPORT ;; haproxy) port=$HAPORT ;; ten) port=$TENPORT ;;
      esac
      echo "$W $target $(run_wrk "$port")" >>"$results"
      echo "  workers=$W round=$r $target done" >&2
    done
  done
  if [ "$W" = 2 ]; then
    # Memory per idle keep-alive connection, with the 2-worker setups.
    mem="$WORK/mem"
    : >"$mem"
    for target in nginx haproxy ten; do
      case $target in
        nginx) port=$NGINXPORT; procs() { pgrep -f "nginx.*$WORK/nginx.conf" ; pgrep -P "$(cat "$WORK/nginx.pid")"; } ;;
        haproxy) port=$HAPORT; procs() { echo "$HAPID"; } ;;
        ten) port=$TENPORT; procs() { echo "$TENPID"; } ;;
      esac
      for n in $HOLD_COUNTS; do
        before=$(rss_kb $(procs | sort -u))
        coproc HOLD { python3 "$TOP/tests/bench/hold.py" 127.0.0.1 "$port" "$n" "$HOST_HEADER"; }
        read -r _ <&"${HOLD[0]}"
        sleep 0.5
        held=$(rss_kb $(procs | sort -u))
        echo >&"${HOLD[1]}"
        read -r _ <&"${HOLD[0]}" || true
        wait "$HOLD_PID" 2>/dev/null || true
        sleep 1
        after=$(rss_kb $(procs | sort -u))
        echo "$target $n $before $held $after" >>"$mem"
      done
    done
  fi
  stop_ten; stop_nginx; stop_haproxy
done

python3 - "$results" "$WORK/mem" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    w, target, rps, p50, p99, errs = line.split()
    rows.setdefault((int(w), target), []).append((float(rps), float(p50), float(p99), int(errs)))
print("| workers | target | requests/s | p50 ms | p99 ms | non-2xx |")
print("|---|---|---|---|---|---|")
med = {}
for (w, target), vals in sorted(rows.items(), key=lambda kv: (kv[0][0], ["direct", "nginx", "haproxy", "ten"].index(kv[0][1]))):
    rps = statistics.median(v[0] for v in vals)
    p50 = statistics.median(v[1] for v in vals)
    p99 = statistics.median(v[2] for v in vals)
    errs = sum(v[3] for v in vals)
    med[(w, target)] = (rps, p50)
    print(f"| {w} | {target} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {errs} |")
print()
print("| workers | ten/nginx rps | ten/haproxy rps | ten/nginx p50 | ten/haproxy p50 |")
print("|---|---|---|---|---|")
for w in (1, 2):
    t, n, h = med.get((w, "ten")), med.get((w, "nginx")), med.get((w, "haproxy"))
    if t and n and h:
        print(f"| {w} | {t[0]/n[0]:.2f} | {t[0]/h[0]:.2f} | {t[1]/n[1]:.2f} | {t[1]/h[1]:.2f} |")
print()
print("| proxy | held conns | RSS before KiB | RSS holding KiB | per conn KiB | RSS after close KiB |")
print("|---|---|---|---|---|---|")
try:
    for line in open(sys.argv[2]):
        target, n, before, held, after = line.split()
        n, before, held, after = int(n), int(before), int(held), int(after)
        print(f"| {target} | {n} | {before} | {held} | {(held - before) / n:.2f} | {after} |")
except FileNotFoundError:
    pass
PY
