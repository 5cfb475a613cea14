#!/usr/bin/env bash
# make bench, HTTPS part: tenement against nginx and HAProxy terminating TLS
# with the same certificate in front of the same backend, in one run, as
# markdown tables with ratios. For an ECDSA P-256 and an RSA 2048
# certificate: wrk over keep-alive connections (records), and with
# `Connection: close` (a new connection, so a handshake, per request); then
# the RSS of each proxy holding idle keep-alive TLS connections. Beside
# requests/s and latency, each row has the CPU time the proxy spent per
# request (utime + stime of its processes over the round), the figure a
# busy shared box disturbs least.
#
# The backend is one nginx worker answering a fixed 200, run as a tenement
# instance; nginx and HAProxy proxy to the same port. Each proxy gets one
# worker (thread). Rounds are short and interleaved so drift on a shared box
# hits all alike. Apart from TLS this is tests/bench/run.sh's setup.
#
# TEN_BEFORE=/path/to/an/older/ten adds that build as target `before`, in the
# same rounds (its own backend, the same nginx config on another port), and
# a table of ten/before ratios: a change measured before and after in one run.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
HOLD=${HOLD:-2000}
HERE=$(cd "$(dirname "$0")" && pwd)
cd "$HERE/../.."
TEN=${TEN:-$PWD/target/release/ten}
TEN_BEFORE=${TEN_BEFORE:-}
TARGETS="nginx haproxy ten${TEN_BEFORE:+ before}"
if [ -n "$TEN_BEFORE" ] && [ ! -x "$TEN_BEFORE" ]; then
  echo "TEN_BEFORE=$TEN_BEFORE is not an executable file" >&2; exit 1
fi
. "$HERE/lib.sh"

bench_install nginx haproxy wrk openssl
[ -x "$TEN" ] || cargo build --release

ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/ten-bench-https.XXXXXX)
TENPID= BEFOREPID= HAPID=
cleanup() {
  [ -n "$TENPID" ] && kill "$TENPID" 2>/dev/null || true
  [ -n "$BEFOREPID" ] && kill "$BEFOREPID" 2>/dev/null || true
  [ -n "$HAPID" ] && kill "$HAPID" 2>/dev/null || true
  [ -f "$WORK/nginx.conf.pid" ] && kill "$(cat "$WORK/nginx.conf.pid" 2>/dev/null)" 2>/dev/null || true
  [ -f "$WORK/backend.conf.pid" ] && kill "$(cat "$WORK/backend.conf.pid" 2>/dev/null)" 2>/dev/null || true
  [ -f "$WORK/before/backend.conf.pid" ] && kill "$(cat "$WORK/before/backend.conf.pid" 2>/dev/null)" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

BACKEND=$(free_port) TENPORT=$(free_port) TENTLS=$(free_port) NGINXPORT=$(free_port) HAPORT=$(free_port)
BEFOREBACKEND=$(free_port) BEFOREPORT=$(free_port) BEFORETLS=$(free_port)
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

backend_conf "$WORK/backend.conf" "$BACKEND"
mkdir -p "$WORK/before"
backend_conf "$WORK/before/backend.conf" "$BEFOREBACKEND"

# ten_serve BINARY DIR PORT TLSPORT BACKENDPORT KIND: starts BINARY serving
# HTTPS with KIND's certificate from DIR (its config, data and log), and
# prints its pid once it answers.
ten_serve() {
  local bin=$1 dir=$2 port=$3 tls=$4 backend=$5 kind=$6 pid
  cat >"$dir/tenement.toml" <<CONF
[settings]
data_dir = "$dir/data"
listen = "127.0.0.1:$port"
port_range = [$backend, $backend]
workers = 1
[settings.tls]
cert = "$WORK/$kind.chain"
key = "$WORK/$kind.key"
https_listen = "127.0.0.1:$tls"
redirect_http = false
[service.bench]
command = "nginx -c $dir/backend.conf"
# A plain process like the backend nginx and HAProxy proxy to (see run.sh).
isolation = "process"
[instances]
bench = ["main"]
CONF
  # A session of its own, as nginx and HAProxy have (see run.sh).
  TEN_LOG=warn setsid "$bin" serve --config "$dir/tenement.toml" 2>>"$dir/ten.err" </dev/null >/dev/null &
  pid=$!
  if wait_up "https://127.0.0.1:$tls/" -k -H "Host: $HOST_HEADER"; then
    echo "$pid"
    return 0
  fi
  # Not recorded for cleanup (the pid goes out only on success): stop it here.
  kill "$pid" 2>/dev/null || true
  echo "$bin did not come up:" >&2; cat "$dir/ten.err" >&2; return 1
}
start_ten() { # kind
  TENPID=$(ten_serve "$TEN" "$WORK" "$TENPORT" "$TENTLS" "$BACKEND" "$1")
  if [ -n "$TEN_BEFORE" ]; then
    BEFOREPID=$(ten_serve "$TEN_BEFORE" "$WORK/before" "$BEFOREPORT" "$BEFORETLS" "$BEFOREBACKEND" "$1")
  fi
}
# gone PID: kills PID and waits (10 s at most) until it has exited, so the
# next server finds its ports free. It is no child of this shell (it was
# started in a command substitution), so `wait` cannot do it.
gone() {
  local _
  kill "$1" 2>/dev/null || return 0
  for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
  echo "pid $1 did not exit" >&2; return 1
}
stop_ten() {
  gone "$TENPID"; TENPID=
  if [ -n "$BEFOREPID" ]; then gone "$BEFOREPID"; BEFOREPID=; fi
}

# wrk's requests/s, p50 and p99 (ms), non-2xx answers and socket errors
# together, and the CPU time the proxy's processes spent per request (ms).
run_wrk() { # target, extra wrk args...
  local target=$1 done rps p50 p99 non2xx sockerr before after
  shift
  before=$(cpu_ticks $(procs "$target"))
  read -r done rps p50 p99 non2xx sockerr < <(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency \
    -H "Host: $HOST_HEADER" "$@" "https://127.0.0.1:$(port_of "$target")/" 2>&1 | parse_wrk)
  after=$(cpu_ticks $(procs "$target"))
  echo "$rps $p50 $p99 $((non2xx + sockerr)) $(python3 -c "print(($after - $before) * 1000 / $TICKS / max($done, 1))")"
}
TICKS=$(getconf CLK_TCK)

procs() { # target
  case $1 in
    nginx) cat "$WORK/nginx.conf.pid"; pgrep -P "$(cat "$WORK/nginx.conf.pid")" ;;
    haproxy) echo "$HAPID" ;;
    ten) echo "$TENPID" ;;
    before) echo "$BEFOREPID" ;;
  esac | sort -u
}

port_of() { case $1 in nginx) echo "$NGINXPORT" ;; haproxy) echo "$HAPORT" ;; ten) echo "$TENTLS" ;; before) echo "$BEFORETLS" ;; esac; }

echo "tenement HTTPS bench: $(nproc) cores, $(date -u +%Y-%m-%d), wrk -t2 -c$CONNS -d${DURATION}s x $ROUNDS rounds, $(openssl version), load average $(cut -d' ' -f1-3 /proc/loadavg)" >&2

results="$WORK/results" mem="$WORK/mem"
: >"$results"; : >"$mem"
for kind in ecdsa rsa; do
  start_ten "$kind"
  start_nginx_proxy "$WORK/nginx.conf" 1 "$NGINXPORT" "$BACKEND" "$WORK/$kind.chain" "$WORK/$kind.key"
  start_haproxy "$WORK/haproxy.cfg" 1 "$HAPORT" "$BACKEND" "$WORK/$kind.haproxy.pem"
  for r in $(seq "$ROUNDS"); do
    for mode in keepalive handshake; do
      extra=()
      [ "$mode" = handshake ] && extra=(-H "Connection: close")
      for target in $TARGETS; do
        echo "$kind $mode $target $(run_wrk "$target" "${extra[@]}")" >>"$results"
        echo "  $kind round=$r $mode $target done" >&2
      done
    done
  done
  for target in $TARGETS; do
    before=$(rss_kb $(procs $target))
    hold_open "$(port_of $target)" "$HOLD" "$HOST_HEADER" --tls
    sleep 0.5
    held=$(rss_kb $(procs $target))
    hold_close
    echo "$kind $target $HOLD $before $held" >>"$mem"
  done
  stop_ten
  stop_nginx_proxy "$WORK/nginx.conf"
  stop_haproxy
done

echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
python3 - "$results" "$mem" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    kind, mode, target, rps, p50, p99, bad, cpu = line.split()
    rows.setdefault((kind, mode, target), []).append((float(rps), float(p50), float(p99), int(bad), float(cpu)))
order = {"nginx": 0, "haproxy": 1, "ten": 2, "before": 3}
print("| key | connections | target | requests/s | p50 ms | p99 ms | CPU ms/request | errors |")
print("|---|---|---|---|---|---|---|---|")
med = {}
for (kind, mode, target), vals in sorted(rows.items(), key=lambda kv: (kv[0][0], kv[0][1] != "keepalive", order[kv[0][2]])):
    rps = statistics.median(v[0] for v in vals)
    p50 = statistics.median(v[1] for v in vals)
    p99 = statistics.median(v[2] for v in vals)
    cpu = statistics.median(v[4] for v in vals)
    med[(kind, mode, target)] = (rps, p50, cpu)
    conns = "keep-alive" if mode == "keepalive" else "new per request"
    print(f"| {kind} | {conns} | {target} | {rps:,.0f} | {p50:.3f} | {p99:.3f} | {cpu:.3f} | {sum(v[3] for v in vals)} |")
print()
print("| key | connections | ten/nginx rps | ten/haproxy rps | ten/nginx p50 | ten/haproxy p50 | ten/nginx CPU | ten/haproxy CPU |")
print("|---|---|---|---|---|---|---|---|")
for kind in ("ecdsa", "rsa"):
    for mode in ("keepalive", "handshake"):
        t, n, h = (med.get((kind, mode, x)) for x in ("ten", "nginx", "haproxy"))
        if t and n and h:
            conns = "keep-alive" if mode == "keepalive" else "new per request"
            print(f"| {kind} | {conns} | {t[0]/n[0]:.2f} | {t[0]/h[0]:.2f} | {t[1]/n[1]:.2f} | {t[1]/h[1]:.2f} | {t[2]/n[2]:.2f} | {t[2]/h[2]:.2f} |")
if any(k[2] == "before" for k in med):
    print()
    print("| key | connections | ten/before rps | ten/before p50 | ten/before CPU |")
    print("|---|---|---|---|---|")
    for kind in ("ecdsa", "rsa"):
        for mode in ("keepalive", "handshake"):
            t, b = med.get((kind, mode, "ten")), med.get((kind, mode, "before"))
            if t and b:
                conns = "keep-alive" if mode == "keepalive" else "new per request"
                print(f"| {kind} | {conns} | {t[0]/b[0]:.2f} | {t[1]/b[1]:.2f} | {t[2]/b[2]:.2f} |")
print()
print("| key | proxy | held TLS conns | RSS before KiB | RSS holding KiB | per conn KiB |")
print("|---|---|---|---|---|---|")
for line in open(sys.argv[2]):
    kind, target, n, before, held = line.split()
    n, before, held = int(n), int(before), int(held)
    print(f"| {kind} | {target} | {n} | {before} | {held} | {(held - before) / n:.2f} |")
PY
