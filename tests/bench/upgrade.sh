#!/usr/bin/env bash
# Upgrades in place under load, printed as a markdown table.
#
# One nginx worker answering a fixed 200 runs as a tenement instance. ten
# runs from a copy of target/release/ten in a temp folder. During each round
# (DURATION seconds), wrk drives CONNS keep-alive connections and a Python
# loop makes a new connection per request (FRESH threads); UPGRADES times
# the copy is replaced (a new file renamed over it) and `ten upgrade` runs.
# Reported per round: requests, failed requests (wrk's socket errors and
# non-2xx, the loop's errors), the longest latency either client saw (the
# pause an upgrade costs a client), how long the server accepted nothing
# (from "draining the front" to the new image's "listening on"), and that
# the server's and the instance's pids did not change.
# Standalone: needs target/release/ten (built if missing), nginx, wrk,
# python3 and curl.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
UPGRADES=${UPGRADES:-3}
CONNS=${CONNS:-32}
FRESH=${FRESH:-4}
cd "$(dirname "$0")/../.."
TOP=$PWD
. "$TOP/tests/bench/lib.sh"
[ -x "$TOP/target/release/ten" ] || cargo build --release
for tool in nginx wrk python3 curl; do
  command -v "$tool" >/dev/null || { echo "upgrade.sh needs $tool" >&2; exit 1; }
done

ulimit -n "$(ulimit -Hn)"
WORK=$(mktemp -d /tmp/ten-upgrade-bench.XXXXXX)
TENPID=
cleanup() {
  [ -n "$TENPID" ] && kill "$TENPID" 2>/dev/null && wait "$TENPID" 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

BACKEND=$(free_port)
TENPORT=$(free_port)
HOST_HEADER="main.bench.localhost"
TEN="$WORK/bin/ten"
mkdir -p "$WORK/bin"
cp "$TOP/target/release/ten" "$TEN"

backend_conf "$WORK/backend.conf" "$BACKEND"
cat >"$WORK/tenement.toml" <<CONF
[settings]
data_dir = "$WORK/data"
listen = "127.0.0.1:$TENPORT"
port_range = [$BACKEND, $BACKEND]
workers = 2
[service.bench]
command = "nginx -c $WORK/backend.conf"
isolation = "process"
[instances]
bench = ["main"]
CONF

# A new connection per request, FRESH threads, until DURATION is over.
cat >"$WORK/fresh.py" <<'PY'
import http.client, sys, threading, time
port, host, secs, threads = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
ok, failed, worst, lock = [0], [0], [0.0], threading.Lock()
end = time.time() + secs
def run():
    while time.time() < end:
        t = time.time()
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            c.request("GET", "/", headers={"Host": host, "Connection": "close"})
            r = c.getresponse(); r.read(); c.close()
            good = r.status == 200
        except Exception:
            good = False
        with lock:
            if good: ok[0] += 1
            else: failed[0] += 1
            worst[0] = max(worst[0], time.time() - t)
ts = [threading.Thread(target=run) for _ in range(threads)]
for t in ts: t.start()
for t in ts: t.join()
print(ok[0], failed[0], round(worst[0] * 1000, 1))
PY

ten() { "$TEN" --config "$WORK/tenement.toml" --data-dir "$WORK/data" "$@"; }
"$TEN" serve --config "$WORK/tenement.toml" 2>>"$WORK/ten.err" &
TENPID=$!
wait_up "http://127.0.0.1:$TENPORT/" -H "Host: $HOST_HEADER" || { cat "$WORK/ten.err" >&2; exit 1; }
inst_pid() { ten ps --json | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["pid"])'; }
INST=$(inst_pid)

echo "| round | requests | failed | longest wait ms (wrk / new conns) | accept pause ms per upgrade | pids kept |"
echo "|---|---:|---:|---|---|---|"
for round in $(seq "$ROUNDS"); do
  before=$(wc -l <"$WORK/ten.err")
  wrk -t2 -c"$CONNS" -d"${DURATION}s" -H "Host: $HOST_HEADER" "http://127.0.0.1:$TENPORT/" >"$WORK/wrk.out" 2>&1 &
  WRK=$!
  python3 "$WORK/fresh.py" "$TENPORT" "$HOST_HEADER" "$DURATION" "$FRESH" >"$WORK/fresh.out" &
  FRESHPID=$!
  gap=$(python3 -c "print($DURATION / ($UPGRADES + 1))")
  upgrades_ok=0
  for _ in $(seq "$UPGRADES"); do
    sleep "$gap"
    cp "$TOP/target/release/ten" "$WORK/bin/ten.new" && mv "$WORK/bin/ten.new" "$TEN"
    ten upgrade >/dev/null && upgrades_ok=$((upgrades_ok + 1))
  done
  wait "$WRK" "$FRESHPID"
  reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.out")
  sock=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$WORK/wrk.out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.out")
  wmax=$(awk '/Latency/ {print $4}' "$WORK/wrk.out")
  read -r fok ffail fmax <"$WORK/fresh.out"
  failed=$(( ${sock:-0} + ${non2xx:-0} + ffail + (UPGRADES - upgrades_ok) ))
  tail -n +"$((before + 1))" "$WORK/ten.err" >"$WORK/ten.err.round"
  pause=$(python3 - "$WORK/ten.err.round" <<'PY'
import re, sys, datetime
t0, out = None, []
for line in open(sys.argv[1]):
    m = re.match(r"(\S+Z) ", line)
    if not m: continue
    t = datetime.datetime.fromisoformat(m.group(1).replace("Z", "+00:00"))
    if "draining the front" in line: t0 = t
    elif "listening on http://" in line and t0 is not None:
        out.append((t - t0).total_seconds() * 1000); t0 = None
print(" / ".join("%.0f" % p for p in out) if out else "-")
PY
)
  kept=no
  [ "$(inst_pid)" = "$INST" ] && kill -0 "$TENPID" && kept=yes
  echo "| $round | $((reqs + fok)) | $failed | $wmax / ${fmax}ms | $pause | $kept |"
done
