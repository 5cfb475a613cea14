#!/usr/bin/env bash
# make bench: tenement (the glibc build and the static musl build) against
# nginx and HAProxy proxying the same kind of backend on the same machine,
# in one run, printed as markdown tables with ratios.
#
# The backend is one nginx worker answering a fixed 200. Each ten runs it as
# its own instance (port_range pinned to one port); nginx and HAProxy proxy
# to the glibc ten's backend, so three of the proxies share one backend
# process and the musl ten has an identical one. Rounds are short and
# interleaved (every target once per round, the order rotating) so drift
# on a shared box hits all alike; figures are medians over the rounds.
#
# Per target and round, wrk -t2 -cCONNS keep-alive gives requests/s, p50 and
# p99; CPU per request is the utime+stime the proxy's own processes (nginx:
# master and workers; ten: the server, not its instance) spent during the
# round over the requests wrk saw answered.
#
# Every proxy runs in a session of its own, as a service would (nginx's
# daemon makes its own; ten and HAProxy are started with setsid): with the
# scheduler's autogroups, a proxy left in this script's session would share
# its CPU share with wrk, which on a busy box changes its requests/s and
# tail latency by tens of percent.
#
# Memory, with 2 workers: RSS of each proxy before, while holding HOLD_CONNS
# idle keep-alive connections (hold.py) and SETTLE seconds after they
# closed; then the same with BUSY_CONNS busy keep-alive connections (wrk
# -cBUSY_CONNS; the highest of a few samples).
#
# TEN_BEFORE=PATH adds one more ten binary (say, the musl build of the
# commit before a change) as the target ten-before, run in the same rounds
# as the others, and a table of ten-musl over it: a change measured against
# the build before it in one run, on a box whose load moves every figure.
#
# Loopback only. Every wait is bounded.
set -euo pipefail

ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-5}
CONNS=${CONNS:-64}
BUSY_CONNS=${BUSY_CONNS:-2000}
HOLD_CONNS=${HOLD_CONNS:-2000}
SETTLE=${SETTLE:-3}
WORKERS=${WORKERS:-"1 2"}
cd "$(dirname "$0")/../.."
TOP=$PWD
TEN_GLIBC=${TEN_GLIBC:-$TOP/target/release/ten}
TEN_MUSL=${TEN_MUSL:-$TOP/target/x86_64-unknown-linux-musl/release/ten}
TEN_BEFORE=${TEN_BEFORE:-}
. "$TOP/tests/bench/lib.sh"

bench_install nginx haproxy wrk
[ -x "$TEN_GLIBC" ] || cargo build --release
[ -x "$TEN_MUSL" ] || make static >&2
BUILDS=(glibc musl)
if [ -n "$TEN_BEFORE" ]; then
  [ -x "$TEN_BEFORE" ] || { echo "TEN_BEFORE=$TEN_BEFORE is not an executable file" >&2; exit 1; }
  BUILDS+=(before)
fi

ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/ten-bench.XXXXXX)
declare -A TENPID=()
HAPID=
cleanup() {
  for p in "${TENPID[@]}" $HAPID; do kill "$p" 2>/dev/null || true; done
  [ -f "$WORK/nginx.conf.pid" ] && kill "$(cat "$WORK/nginx.conf.pid" 2>/dev/null)" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

HOST_HEADER="main.bench.localhost"
CLK_TCK=$(getconf CLK_TCK)

declare -A BACKEND=() TENPORT=() TENBIN=([glibc]=$TEN_GLIBC [musl]=$TEN_MUSL [before]=$TEN_BEFORE)
for b in "${BUILDS[@]}"; do
  BACKEND[$b]=$(free_port)
  TENPORT[$b]=$(free_port)
  mkdir -p "$WORK/$b"
  backend_conf "$WORK/$b/backend.conf" "${BACKEND[$b]}"
done
NGINXPORT=$(free_port)
HAPORT=$(free_port)
UPSTREAM=${BACKEND[glibc]}

start_ten() { # build workers
  local b=$1
  cat >"$WORK/$b/tenement.toml" <<CONF
[settings]
data_dir = "$WORK/$b/data"
listen = "127.0.0.1:0"
port_range = [${BACKEND[$b]}, ${BACKEND[$b]}]
workers = $2
[service.bench]
command = "nginx -c $WORK/$b/backend.conf"
# The backend runs as a plain process, like the one nginx and HAProxy proxy
# to (as root the default level is namespace, where nginx finds no
# /var/lib/nginx); what is measured is the front.
isolation = "process"
[instances]
bench = ["main"]
CONF
  TEN_LOG=warn setsid "${TENBIN[$b]}" serve --config "$WORK/$b/tenement.toml" --port "${TENPORT[$b]}" \
    2>>"$WORK/$b/ten.err" &
  TENPID[$b]=$!
  wait_up "http://127.0.0.1:${TENPORT[$b]}/" -H "Host: $HOST_HEADER" && return 0
  echo "ten ($b) did not come up:" >&2
  cat "$WORK/$b/ten.err" >&2
  exit 1
}
stop_ten() { # build
  kill "${TENPID[$1]}"
  wait "${TENPID[$1]}" 2>/dev/null || true
  unset "TENPID[$1]"
}
port_of() { # target
  case $1 in
    direct) echo "$UPSTREAM" ;;
    nginx) echo "$NGINXPORT" ;;
    haproxy) echo "$HAPORT" ;;
    ten-*) echo "${TENPORT[${1#ten-}]}" ;;
  esac
}
pids_of() { # target: the proxy's own processes
  case $1 in
    direct) ;;
    nginx)
      local master
      master=$(cat "$WORK/nginx.conf.pid")
      echo "$master"
      pgrep -P "$master" || true
      ;;
    haproxy) echo "$HAPID" ;;
    ten-*) echo "${TENPID[${1#ten-}]}" ;;
  esac
}
run_round() { # workers target
  local port pids before after out done rps p50 p99 non2xx sockerr
  port=$(port_of "$2")
  pids=$(pids_of "$2" | sort -u | tr '\n' ' ')
  before=$(cpu_ticks $pids)
  out=$(wrk -t2 -c"$CONNS" -d"${DURATION}s" --latency -H "Host: $HOST_HEADER" "http://127.0.0.1:$port/" 2>&1 | parse_wrk)
  after=$(cpu_ticks $pids)
  # Socket errors are counted with the non-2xx answers.
  read -r done rps p50 p99 non2xx sockerr <<<"$out"
  echo "$1 $2 $done $rps $p50 $p99 $((non2xx + sockerr)) $((after - before))" >>"$WORK/results"
}

# Memory of a proxy with BUSY_CONNS busy connections, and after they close.
busy_memory() { # target
  local port pids before peak=0 now after
  port=$(port_of "$1")
  pids=$(pids_of "$1" | sort -u | tr '\n' ' ')
  before=$(rss_kb $pids)
  wrk -t2 -c"$BUSY_CONNS" -d4s -H "Host: $HOST_HEADER" "http://127.0.0.1:$port/" >"$WORK/busy.out" 2>&1 &
  local wrkpid=$!
  for _ in 1 2 3 4 5 6; do
    sleep 0.5
    now=$(rss_kb $pids)
    [ "$now" -gt "$peak" ] && peak=$now
  done
  wait "$wrkpid" || true
  sleep "$SETTLE"
  after=$(rss_kb $pids)
  echo "$1 busy $BUSY_CONNS $before $peak $after" >>"$WORK/mem"
}
# The same with HOLD_CONNS idle keep-alive connections.
held_memory() { # target
  local port pids before held after
  port=$(port_of "$1")
  pids=$(pids_of "$1" | sort -u | tr '\n' ' ')
  before=$(rss_kb $pids)
  hold_open "$port" "$HOLD_CONNS" "$HOST_HEADER"
  sleep 0.5
  held=$(rss_kb $pids)
  hold_close
  sleep "$SETTLE"
  after=$(rss_kb $pids)
  echo "$1 held $HOLD_CONNS $before $held $after" >>"$WORK/mem"
}

TARGETS=(direct nginx haproxy)
for b in "${BUILDS[@]}"; do TARGETS+=("ten-$b"); done
echo "tenement bench: $(nproc) cores, $(date -u +%Y-%m-%d), wrk -t2 -c$CONNS -d${DURATION}s x $ROUNDS rounds, workers $WORKERS" >&2
: >"$WORK/results"
: >"$WORK/mem"
for W in $WORKERS; do
  for b in "${BUILDS[@]}"; do start_ten "$b" "$W"; done
  start_nginx_proxy "$WORK/nginx.conf" "$W" "$NGINXPORT" "$UPSTREAM"
  start_haproxy "$WORK/haproxy.cfg" "$W" "$HAPORT" "$UPSTREAM"
  for r in $(seq "$ROUNDS"); do
    # Rotate the order so no target always follows the same one.
    n=${#TARGETS[@]}
    for i in $(seq 0 $((n - 1))); do
      target=${TARGETS[$(((i + r) % n))]}
      run_round "$W" "$target"
    done
    echo "  workers=$W round=$r done" >&2
  done
  if [ "$W" = 2 ]; then
    for target in nginx haproxy ten-glibc ten-musl; do
      held_memory "$target"
      busy_memory "$target"
      echo "  memory $target done" >&2
    done
  fi
  for b in "${BUILDS[@]}"; do stop_ten "$b"; done
  stop_nginx_proxy "$WORK/nginx.conf"
  stop_haproxy
done

python3 - "$WORK/results" "$WORK/mem" "$CLK_TCK" <<'PY'
import statistics, sys
tck = float(sys.argv[3])
order = ["direct", "nginx", "haproxy", "ten-glibc", "ten-musl", "ten-before"]
rows = {}
for line in open(sys.argv[1]):
    w, target, done, rps, p50, p99, errs, ticks = line.split()
    done = int(done)
    cpu_us = float(ticks) / tck * 1e6 / done if done and target != "direct" else float("nan")
    rows.setdefault((int(w), target), []).append((float(rps), float(p50), float(p99), cpu_us, int(errs)))
med = {}
print("| workers | target | requests/s | p50 ms | p99 ms | CPU us/request | errors |")
print("|---|---|---:|---:|---:|---:|---:|")
for (w, target), vals in sorted(rows.items(), key=lambda kv: (kv[0][0], order.index(kv[0][1]))):
    m = tuple(statistics.median(v[i] for v in vals) for i in range(4))
    med[(w, target)] = m
    errs = sum(v[4] for v in vals)
    cpu = "" if target == "direct" else f"{m[3]:.2f}"
    print(f"| {w} | {target} | {m[0]:,.0f} | {m[1]:.3f} | {m[2]:.3f} | {cpu} | {errs} |")
print()
print("Ratios (ten / other at equal workers; CPU, p50 and p99: lower is better, requests/s: higher):")
print()
print("| workers | build | CPU/req vs nginx | vs haproxy | req/s vs nginx | vs haproxy | p50 vs nginx | vs haproxy | p99 vs nginx | vs haproxy |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
ws = sorted({w for w, _ in med})
for w in ws:
    n, h = med.get((w, "nginx")), med.get((w, "haproxy"))
    for build in ("ten-glibc", "ten-musl", "ten-before"):
        t = med.get((w, build))
        if not (t and n and h):
            continue
        cells = []
        for i in (3, 0, 1, 2):
            cells += [f"{t[i] / n[i]:.2f}", f"{t[i] / h[i]:.2f}"]
        print(f"| {w} | {build[4:]} | " + " | ".join(cells) + " |")
def build_over(top, bottom):
    """ten-TOP's figures over ten-BOTTOM's, per worker count."""
    if not any(t == "ten-" + bottom for _, t in med):
        return
    print()
    print(f"| workers | {top} / {bottom}: CPU/req | req/s | p50 | p99 |")
    print("|---|---:|---:|---:|---:|")
    for w in ws:
        b, t = med.get((w, "ten-" + bottom)), med.get((w, "ten-" + top))
        if b and t:
            print(f"| {w} | {t[3] / b[3]:.2f} | {t[0] / b[0]:.2f} | {t[1] / b[1]:.2f} | {t[2] / b[2]:.2f} |")
build_over("musl", "glibc")
build_over("musl", "before")
print()
print("| proxy (2 workers) | connections | RSS before KiB | RSS with them KiB | per conn KiB | RSS after close KiB | after / before |")
print("|---|---|---:|---:|---:|---:|---:|")
for line in open(sys.argv[2]):
    target, kind, n, before, peak, after = line.split()
    n, before, peak, after = int(n), int(before), int(peak), int(after)
    print(f"| {target} | {n} {kind} | {before} | {peak} | {(peak - before) / n:.2f} | {after} | {after / before:.2f} |")
PY
