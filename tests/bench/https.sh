#!/usr/bin/env bash
# make bench, HTTPS part: tenement against nginx and HAProxy terminating TLS
# with the same certificate in front of the same backend, in one run, as
# markdown tables with ratios. For an ECDSA P-256 and an RSA 2048
# certificate: wrk over keep-alive connections (records), and with
# `Connection: close` (a new connection, so a handshake, per request); then
# the RSS of each proxy holding idle keep-alive TLS connections.
#
# The backend is one nginx worker answering a fixed 200, run as a tenement
# instance; nginx and HAProxy proxy to the same port. Each proxy gets one
# worker (thread). Rounds are short and interleaved so drift on a shared box
# hits all alike. Apart from TLS this is tests/bench/run.sh's setup.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
HOLD=${HOLD:-2000}
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
TEN=${TEN:-$PWD/target/release/ten}

need=()
command -v nginx >/dev/null || need+=(nginx)
command -v haproxy >/dev/null || need+=(haproxy)
command -v wrk >/dev/null || need+=(wrk)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
[ -x "$TEN" ] || cargo build --release

ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/ten-bench-https.XXXXXX)
TENPID= HAPID=
cleanup() {
  [ -n "$TENPID" ] && kill "$TENPID" 2>/dev/null || true
  [ -n "$HAPID" ] && kill "$HAPID" 2>/dev/null || true
  [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  [ -f "$WORK/backend.pid" ] && kill "$(cat "$WORK/backend.pid")" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
BACKEND=$(free_port) TENPORT=$(free_port) TENTLS=$(free_port) NGINXPORT=$(free_port) HAPORT=$(free_port)
HOST_HEADER="main.bench.localhost"

# One certificate per key kind for *.bench.localhost, from a throwaway CA.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
  -subj /CN=bench-ca -keyout "$WORK/ca.key" -out "$WORK/ca.pem" 2>/dev/null
for kind in ecdsa rsa; do
  case $kind in
    ecdsa) newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256) ;;
    rsa) newkey=(-newkey rsa:2048) ;;
  esac
  openssl req -new "${newkey[@]}" -nodes -subj /CN=main.bench.localhost \
    -keyout "$WORK/$kind.key" -out "$WORK/$kind.csr" 2>/dev/null
  openssl x509 -req -in "$WORK/$kind.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
    -CAcreateserial -days 2 -out "$WORK/$kind.crt" \
    -extfile <(printf 'subjectAltName=DNS:*.bench.localhost,DNS:localhost\n') 2>/dev/null
  cat "$WORK/$kind.crt" "$WORK/ca.pem" >"$WORK/$kind.chain"
  cat "$WORK/$kind.chain" "$WORK/$kind.key" >"$WORK/$kind.haproxy.pem"
done

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

start_ten() { # kind
  cat >"$WORK/tenement.toml" <<CONF
[settings]
data_dir = "$WORK/data"
listen = "127.0.0.1:$TENPORT"
port_range = [$BACKEND, $BACKEND]
workers = 1
[settings.tls]
cert = "$WORK/$1.chain"
key = "$WORK/$1.key"
https_listen = "127.0.0.1:$TENTLS"
redirect_http = false
[service.bench]
command = "nginx -c $WORK/backend.conf"
[instances]
bench = ["main"]
CONF
  TEN_LOG=warn "$TEN" serve --config "$WORK/tenement.toml" 2>>"$WORK/ten.err" &
  TENPID=$!
  for _ in $(seq 200); do
    curl -skf -o /dev/null -H "Host: $HOST_HEADER" "https://127.0.0.1:$TENTLS/" && return 0
    sleep 0.05
  done
  echo "ten did not come up:" >&2; cat "$WORK/ten.err" >&2; exit 1
}
stop_ten() { kill "$TENPID"; wait "$TENPID" 2>/dev/null || true; TENPID=; }

start_nginx() { # kind
  cat >"$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/nginx.err;
events { worker_connections 20000; }
http {
  access_log off;
  keepalive_requests 1000000;
  upstream backend { server 127.0.0.1:$BACKEND; keepalive 128; }
  server {
    listen 127.0.0.1:$NGINXPORT ssl reuseport;
    ssl_certificate $WORK/$1.chain;
    ssl_certificate_key $WORK/$1.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    location / { proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
CONF
  nginx -c "$WORK/nginx.conf"
  for _ in $(seq 100); do curl -skf -o /dev/null "https://127.0.0.1:$NGINXPORT/" && return 0; sleep 0.05; done
  echo "nginx proxy did not come up" >&2; exit 1
}
stop_nginx() { kill "$(cat "$WORK/nginx.pid")"; while [ -f "$WORK/nginx.pid" ]; do sleep 0.05; done; }

start_haproxy() { # kind
  cat >"$WORK/haproxy.cfg" <<CONF
global
  nbthread 1
  maxconn 9000
defaults
  mode http
  timeout connect 5s
  timeout client 60s
  timeout server 60s
  http-reuse always
frontend f
  bind 127.0.0.1:$HAPORT ssl crt $WORK/$1.haproxy.pem alpn http/1.1
  default_backend b
backend b
  server s1 127.0.0.1:$BACKEND
CONF
  haproxy -f "$WORK/haproxy.cfg" -db >/dev/null 2>&1 &
  HAPID=$!
  for _ in $(seq 100); do curl -skf -o /dev/null "https://127.0.0.1:$HAPORT/" && return 0; sleep 0.05; done
  echo "haproxy did not come up" >&2; exit 1
}
stop_haproxy() { kill "$HAPID"; wait "$HAPID" 2>/dev/null || true; HAPID=; }

# wrk's requests/s, p50 and p99 (ms) and non-2xx count.
run_wrk() { # port, extra wrk args...
  local port=$1; shift
  wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $HOST_HEADER" "$@" "https://127.0.0.1:$port/" 2>&1 | python3 -c '
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
socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
bad = int(errors.group(1)) if errors else 0
if socket_errors:
    bad += sum(int(g) for g in socket_errors.groups())
print("%s %.3f %.3f %d" % (rps.group(1) if rps else "nan", ms("50%"), ms("99%"), bad))
'
}

rss_kb() { # pids...
  local total=0
  for p in "$@"; do
    total=$((total + $(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}

procs() { # target
  case $1 in
    nginx) pgrep -f "nginx.*$WORK/nginx.conf"; pgrep -P "$(cat "$WORK/nginx.pid")" ;;
    haproxy) echo "$HAPID" ;;
    ten) echo "$TENPID" ;;
  esac | sort -u
}

port_of() { case $1 in nginx) echo "$NGINXPORT" ;; haproxy) echo "$HAPORT" ;; ten) echo "$TENTLS" ;; esac; }

echo "tenement HTTPS bench: $(nproc) cores, $(date -u +%Y-%m-%d), wrk -t2 -c$CONNS -d${DURATION}s x $ROUNDS rounds, $(openssl version)" >&2

results="$WORK/results" mem="$WORK/mem"
: >"$results"; : >"$mem"
for kind in ecdsa rsa; do
  start_ten "$kind"; start_nginx "$kind"; start_haproxy "$kind"
  for r in $(seq "$ROUNDS"); do
    for mode in keepalive handshake; do
      extra=()
      [ "$mode" = handshake ] && extra=(-H "Connection: close")
      for target in nginx haproxy ten; do
        echo "$kind $mode $target $(run_wrk "$(port_of $target)" "${extra[@]}")" >>"$results"
        echo "  $kind round=$r $mode $target done" >&2
      done
    done
  done
  for target in nginx haproxy ten; do
    before=$(rss_kb $(procs $target))
    coproc HOLDER { python3 "$HERE/hold_tls.py" 127.0.0.1 "$(port_of $target)" "$HOLD" "$HOST_HEADER"; }
    read -r _ <&"${HOLDER[0]}"
    sleep 0.5
    held=$(rss_kb $(procs $target))
    echo >&"${HOLDER[1]}"
    read -r _ <&"${HOLDER[0]}" || true
    wait "$HOLDER_PID" 2>/dev/null || true
    echo "$kind $target $HOLD $before $held" >>"$mem"
  done
  stop_ten; stop_nginx; stop_haproxy
done

python3 - "$results" "$mem" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kind, mode, target, rps, p50, p99, bad = line.split()
    rows.setdefault((kind, mode, target), []).append((float(rps), float(p50), float(p99), int(bad)))
order = {"nginx": 0, "haproxy": 1, "ten": 2}
print("| key | connections | target | requests/s | p50 ms | p99 ms | errors |")
print("|---|---|---|---|---|---|---|")
med = {}
for (kind, mode, target), vals in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "keepalive", order[kv[0][2]])):
    rps = statistics.median(v[0] for v in vals)
    p50 = statistics.median(v[1] for v in vals)
    p99 = statistics.median(v[2] for v in vals)
    med[(kind, mode, target)] = (rps, p50)
    conns = "keep-alive" if mode == "keepalive" else "new per request"
    print(f"| {kind} | {conns} | {target} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {sum(v[3] for v in vals)} |")
print()
print("| key | connections | ten/nginx rps | ten/haproxy rps | ten/nginx p50 | ten/haproxy p50 |")
print("|---|---|---|---|---|---|")
for kind in ("ecdsa", "rsa"):
    for mode in ("keepalive", "handshake"):
        t, n, h = (med.get((kind, mode, x)) for x in ("ten", "nginx", "haproxy"))
        if t and n and h:
            conns = "keep-alive" if mode == "keepalive" else "new per request"
            print(f"| {kind} | {conns} | {t[0]/n[0]:.2f} | {t[0]/h[0]:.2f} | {t[1]/n[1]:.2f} | {t[1]/h[1]:.2f} |")
print()
print("| key | proxy | held TLS conns | RSS before KiB | RSS holding KiB | per conn KiB |")
print("|---|---|---|---|---|---|")
for line in open(sys.argv[2]):
    kind, target, n, before, held = line.split()
    n, before, held = int(n), int(before), int(held)
    print(f"| {kind} | {target} | {n} | {before} | {held} | {(held - before) / n:.2f} |")
PY
