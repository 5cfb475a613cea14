#!/usr/bin/env bash
# Scale on one box: a registry of SLEEPING (10,000) sleeping instances and
# RUNNING (1,000) more running, printed as a markdown table.
#
# The app is tests/fixtures/tiny_app.c, built here as a static binary (one
# thread, answers 200 to anything), so a thousand of them fit on a small
# box. Its service runs at `isolation = "process"`: what the namespace and
# sandbox levels add per instance is measured by isolation.sh, and the
# process level keeps a thousand starts cheap enough for this run.
#
# - start: `ten serve` from exec to its API answering, with the registry of
#   SLEEPING entries already on disk (written by this script): `state` and
#   a journal of SLEEPING more records, the most it holds before it is
#   compacted.
# - spawn: wall time of `ten spawn` of RUNNING instances, 8 at a time,
#   until all of them run (each spawn is one line in the registry's
#   journal, however many entries it has).
# - ps: wall time of `ten ps --all --json` (SLEEPING + RUNNING instances),
#   median and p90 of 10, after the RUNNING instances are spawned.
# - RSS: the server's VmRSS with only sleeping instances, then with RUNNING
#   running ones (log rings included), against 15 MB + 2 KB per sleeping +
#   50 KB per running instance.
# - idle CPU: the server's utime+stime over IDLE_SECS (30) with RUNNING
#   instances running, health checks on (every 10 s, a GET of /health) and
#   no traffic, as a share of one core.
# - wake storm: STORM (200) distinct sleeping instances requested at once
#   (one thread each); their statuses, the time until the last answered,
#   and `ten ps` timed in a loop meanwhile (p50, p99).
# TEN_BEFORE=/path/to/an/older/ten: `ten ps --all --json` is also timed
#   with that build's CLI against the same server, the two interleaved
#   (with the ratio), beside `curl` of `GET /api/instances` (the server's
#   part).
# ONLY=idle: the registry, the start, the spawns and the idle CPU only (no
# `ten ps` timings, no RSS rows, no wake storm), for profiling the idle
# server; with it the server's pid is printed on stderr before the idle
# window, for `perf record -p` or `strace -p` over that window.
# Standalone: needs target/release/ten (built if missing), python3, curl
# and a C compiler (musl-gcc preferred, else cc -static, else cc).
set -euo pipefail

SLEEPING=${SLEEPING:-10000}
RUNNING=${RUNNING:-1000}
STORM=${STORM:-200}
IDLE_SECS=${IDLE_SECS:-30}
# TINY_CLOSE=1: the app closes every connection after its answer, so each
# health check connects anew (the default keeps them).
TINY_CLOSE=${TINY_CLOSE:-}
ONLY=${ONLY:-}
TEN_BEFORE=${TEN_BEFORE:-}
if [ -n "$TEN_BEFORE" ] && [ ! -x "$TEN_BEFORE" ]; then
  echo "TEN_BEFORE=$TEN_BEFORE is not an executable file" >&2; exit 1
fi
case "$ONLY" in
  "" | idle) ;;
  *) echo "scale.sh: ONLY=$ONLY: the only part that runs alone is ONLY=idle" >&2; exit 1 ;;
esac
cd "$(dirname "$0")/../.."
TOP=$PWD
TEN=${TEN:-$TOP/target/release/ten}
[ -x "$TEN" ] || cargo build --release
command -v python3 >/dev/null && command -v curl >/dev/null || {
  echo "scale.sh needs python3 and curl" >&2
  exit 1
}
. "$TOP/tests/bench/lib.sh"

WORK=$(mktemp -d /tmp/ten-scale.XXXXXX)
TENPID=
cleanup() {
  if [ -n "$TENPID" ] && kill "$TENPID" 2>/dev/null; then
    # Stopping a thousand instances: give it the time it needs.
    for _ in $(seq 600); do kill -0 "$TENPID" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$TENPID" 2>/dev/null || true
  fi
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

APP=$WORK/tiny_app
if command -v musl-gcc >/dev/null; then
  musl-gcc -static -Os -s -o "$APP" tests/fixtures/tiny_app.c
else
  cc -static -Os -s -o "$APP" tests/fixtures/tiny_app.c 2>/dev/null \
    || cc -Os -o "$APP" tests/fixtures/tiny_app.c
fi

free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
LISTEN=$(free_port)
# Below the kernel's ephemeral ports (32768 and up by default), so no
# outgoing connection on the box takes an instance's port meanwhile, and
# below 22000, where the test suite's servers take theirs.
LOW=$((8000 + RANDOM % 500))
HIGH=$((LOW + SLEEPING + RUNNING + 1000))
[ "$HIGH" -lt 22000 ] || { echo "scale.sh: SLEEPING + RUNNING too large for ports 8000-21999" >&2; exit 1; }
DATA=$WORK/data
CONF=$WORK/tenement.toml
cat >"$CONF" <<CONF
[settings]
data_dir = "$DATA"
domain = "localhost"
port_range = [$LOW, $HIGH]
health_check_interval = 10

[service.tiny]
command = "$APP"
health = "/health"
restart = "on-failure"
isolation = "process"
env = { TINY_CLOSE = "${TINY_CLOSE:-0}" }
CONF

# The registry as a previous run left it: SLEEPING sleeping instances in
# `state`, and a journal as large as a compaction lets it grow: one change
# of every entry since (its weight set to 50).
mkdir -p "$DATA/.tenement"
chmod 700 "$DATA/.tenement"
python3 - "$DATA/.tenement/state" "$SLEEPING" "$LOW" <<'PY'
import hashlib, json, sys
path, n, low = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
entries = [{"service": "tiny", "id": f"s{i}", "port": low + i, "weight": 100,
            "desired": "sleeping", "pid": None, "pgid": None, "start_ticks": None,
            "restarts": 0, "uid": None} for i in range(n)]
with open(path, "w") as f:
    json.dump({"version": 1, "generation": 1, "instances": entries}, f, indent=2)
def line(record):
    text = json.dumps(record, separators=(",", ":")).encode()
    return hashlib.sha256(text).hexdigest()[:16].encode() + b" " + text + b"\n"
with open(path + ".journal", "wb") as f:
    f.write(line({"generation": 1}))
    for e in entries:
        f.write(line({"put": dict(e, weight=50)}))
PY
chmod 600 "$DATA/.tenement/state" "$DATA/.tenement/state.journal"

load() { cut -d' ' -f1-3 /proc/loadavg; }
echo "load average before: $(load)" >&2

T0=$(date +%s.%N)
"$TEN" serve --config "$CONF" --data-dir "$DATA" --port "$LISTEN" --bind 127.0.0.1 \
  >"$WORK/serve.log" 2>&1 &
TENPID=$!
for _ in $(seq 3000); do
  curl -sf --unix-socket "$DATA/.tenement/ten.sock" http://ten/health >/dev/null 2>&1 && break
  sleep 0.002
done
T1=$(date +%s.%N)

python3 - "$TEN" "$CONF" "$DATA" "$LISTEN" "$TENPID" "$SLEEPING" "$RUNNING" "$STORM" \
  "$IDLE_SECS" "$T0" "$T1" "$ONLY" "$TEN_BEFORE" <<'PY'
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

ten, conf, data, listen, pid = sys.argv[1:6]
sleeping, running, storm, idle_secs = map(int, sys.argv[6:10])
t0, t1 = float(sys.argv[10]), float(sys.argv[11])
only_idle = sys.argv[12] == "idle"
ten_before = sys.argv[13]
listen, pid = int(listen), int(pid)
CLK = os.sysconf("SC_CLK_TCK")


def cli(*args, build=ten):
    return subprocess.run([build, "--data-dir", data, "--config", conf, *args],
                          check=True, capture_output=True, text=True).stdout


def rss_kb():
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])


def cpu_ticks():
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


def load():
    return " ".join(open("/proc/loadavg").read().split()[:3])


def timed(f, n):
    out = []
    for _ in range(n):
        a = time.perf_counter()
        f()
        out.append(time.perf_counter() - a)
    return out


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]


def report():
    print(f"\n### Scale ({sleeping} sleeping + {running} running, {os.cpu_count()} cores)\n")
    print("| measure | result | goal | met |")
    print("|---|---|---|---|")
    for what, got, goal, met in rows:
        print(f"| {what} | {got} | {goal} | {'yes' if met else 'NO'} |")


rows = []
start_ms = (t1 - t0) * 1000
insts = json.loads(cli("ps", "--all", "--json"))
assert len(insts) == sleeping, f"{len(insts)} instances restored, not {sleeping}"
assert all(i["weight"] == 50 for i in insts), "the journal's records were not read"
rows.append((f"`ten serve` start with {sleeping} registry entries and {sleeping} journal records (exec to API answering)",
             f"{start_ms:.0f} ms", "< 1000 ms", start_ms < 1000))
time.sleep(1)
rss_sleep = rss_kb()
bound_sleep = 15 * 1024 + 2 * sleeping
if not only_idle:
    rows.append((f"server RSS, {sleeping} sleeping", f"{rss_sleep / 1024:.1f} MB",
                 f"<= {bound_sleep / 1024:.1f} MB", rss_sleep <= bound_sleep))

# RUNNING more instances, spawned 8 at a time, then all ready.
a = time.perf_counter()
with ThreadPoolExecutor(8) as pool:
    list(pool.map(lambda i: cli("spawn", f"tiny:r{i}"), range(running)))
deadline = time.time() + 300
while time.time() < deadline:
    up = [i for i in json.loads(cli("ps", "--json"))
          if i["state"] == "running" and i["id"].startswith("r")]
    if len(up) == running:
        break
    time.sleep(2)
else:
    raise SystemExit(f"only {len(up)} of {running} instances running after 300 s")
spawn_s = time.perf_counter() - a
spawn_load = load()
print(f"spawned {running} instances in {spawn_s:.1f} s (load {spawn_load})", file=sys.stderr)
rows.append((f"`ten spawn` of {running} more, 8 at a time, until all run (load {spawn_load})",
             f"{spawn_s:.1f} s", "reported", True))

if not only_idle and not ten_before:
    ps = timed(lambda: cli("ps", "--all", "--json"), 10)
    rows.append((f"`ten ps --all --json` ({sleeping + running} instances), median / p90",
                 f"{statistics.median(ps) * 1000:.0f} / {pct(ps, 0.9) * 1000:.0f} ms", "< 300 ms",
                 statistics.median(ps) < 0.3))
elif not only_idle:
    # Interleaved: this build's CLI, TEN_BEFORE's, and curl, in turn.
    sock = f"{data}/.tenement/ten.sock"
    curl = ["curl", "-sf", "--unix-socket", sock, "-o", "/dev/null", "http://ten/api/instances"]
    ps, before, server = [], [], []
    for _ in range(10):
        ps += timed(lambda: cli("ps", "--all", "--json"), 1)
        before += timed(lambda: cli("ps", "--all", "--json", build=ten_before), 1)
        server += timed(lambda: subprocess.run(curl, check=True), 1)
    med = statistics.median
    rows.append((f"`ten ps --all --json` ({sleeping + running} instances), median / p90, "
                 f"interleaved with TEN_BEFORE's CLI (load {load()})",
                 f"{med(ps) * 1000:.0f} / {pct(ps, 0.9) * 1000:.0f} ms; before "
                 f"{med(before) * 1000:.0f} / {pct(before, 0.9) * 1000:.0f} ms "
                 f"({med(ps) / med(before):.2f}x)", "< 300 ms", med(ps) < 0.3))
    rows.append(("`curl` of `GET /api/instances` beside them (the server's part), median / p90",
                 f"{med(server) * 1000:.0f} / {pct(server, 0.9) * 1000:.0f} ms", "reported", True))

# Idle: every instance has had a health check or two; then no traffic.
time.sleep(12)
if only_idle:
    print(f"idle window of {idle_secs} s starts now; server pid {pid}", file=sys.stderr, flush=True)
c0, w0 = cpu_ticks(), time.perf_counter()
time.sleep(idle_secs)
c1, w1 = cpu_ticks(), time.perf_counter()
idle = (c1 - c0) / CLK / (w1 - w0) * 100
idle_load = load()
rows.append((f"server CPU, {running} running, no traffic ({idle_secs} s; load {idle_load})",
             f"{idle:.2f} % of a core", "< 1 %", idle < 1))
if only_idle:
    report()
    sys.exit(0)
rss_run = rss_kb()
bound_run = 15 * 1024 + 2 * sleeping + 50 * running
rows.append((f"server RSS, {sleeping} sleeping + {running} running", f"{rss_run / 1024:.1f} MB",
             f"<= {bound_run / 1024:.1f} MB", rss_run <= bound_run))

# Wake storm: STORM distinct sleeping instances at once; `ten ps` meanwhile.
statuses, lock = {}, threading.Lock()
go = threading.Barrier(storm + 1)


def wake(i):
    req = urllib.request.Request(f"http://127.0.0.1:{listen}/",
                                 headers={"Host": f"s{i}.tiny.localhost"})
    go.wait()
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            code = r.status
    except urllib.error.HTTPError as e:
        code = e.code
    except OSError as e:
        code = type(e).__name__
    with lock:
        statuses[code] = statuses.get(code, 0) + 1


threads = [threading.Thread(target=wake, args=(i,)) for i in range(storm)]
for t in threads:
    t.start()
ps_times, done = [], threading.Event()


def poll_ps():
    while not done.is_set():
        ps_times.extend(timed(lambda: cli("ps"), 1))


poller = threading.Thread(target=poll_ps)
a = time.perf_counter()
go.wait()
poller.start()
for t in threads:
    t.join()
storm_s = time.perf_counter() - a
done.set()
poller.join()
storm_load = load()
ok = statuses.get(200, 0)
rows.append((f"wake storm: {storm} sleeping instances at once (load {storm_load})",
             f"{ok} x 200, others {({k: v for k, v in statuses.items() if k != 200}) or 'none'}; "
             f"all answered in {storm_s:.1f} s", "no 5xx", ok == storm))
rows.append((f"`ten ps` during the storm ({len(ps_times)} calls), p50 / p99",
             f"{statistics.median(ps_times) * 1000:.0f} / {pct(ps_times, 0.99) * 1000:.0f} ms",
             "reported", True))

report()
PY
echo "load average after: $(load)" >&2
