#!/usr/bin/env bash
# Isolation cost: spawn-to-serving and wake per level (process, namespace,
# sandbox), next to bubblewrap starting the same app with comparable
# namespaces, and the server's RSS per running instance per level. Printed
# as markdown tables.
#
# The app (APP=c, the default): tests/fixtures/tiny_app.c, built here as a
# static binary with musl-gcc or cc (it starts in well under a millisecond,
# so what is measured is the isolation, not the app); APP=python: Python's
# http.server (ThreadingHTTPServer) under /usr/bin/python3. Either answers
# 200 "ok", and GET /exit makes it exit 0, which under restart =
# "on-failure" puts the instance to sleep (a sleeping instance each round
# without waiting for idle_timeout).
#
# - spawn: POST /api/instances/spawn {"wait": true} over ten.sock, then
#   the first byte of GET / through tenement, from one clock.
# - wake: the first byte of GET / through tenement to a sleeping instance.
# - bwrap: exec of bwrap --unshare-pid --unshare-ipc --unshare-uts
#   --unshare-cgroup --proc /proc --dev /dev --tmpfs /tmp, system dirs and
#   the app's folder read-only, to the first byte of GET / (connect polled
#   every 1 ms); the same launcher without bwrap is the floor.
# - RSS: ten serve's VmRSS with N (10) instances of a level running, minus
#   before, over N; and the VmRSS and PSS of tenement's init (pid 1 of a
#   namespaced instance).
# Median and p90 of ROUNDS (20), levels interleaved within each round in
# an order that turns each round.
# Loopback only; every loop is bounded. Needs root (namespace and sandbox),
# bwrap (installed from Debian when missing), cc or /usr/bin/python3 and
# target/release/ten (built if missing).
set -euo pipefail

ROUNDS=${ROUNDS:-20}
APP_KIND=${APP:-c}
RSS_INSTANCES=${RSS_INSTANCES:-10}
cd "$(dirname "$0")/../.."
TOP=$PWD
TEN=${TEN:-$TOP/target/release/ten}
PY=/usr/bin/python3

if [ "$(id -u)" != 0 ]; then
  echo "isolation.sh: skipped: the namespace and sandbox levels need root" >&2
  exit 0
fi
[ -x "$PY" ] || { echo "isolation.sh needs $PY" >&2; exit 1; }
if ! command -v bwrap >/dev/null; then
  echo "installing bubblewrap" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq bubblewrap >/dev/null
fi
[ -x "$TEN" ] || cargo build --release

# Not under /tmp: the instances get a private /tmp, and bwrap a tmpfs there.
mkdir -p "$TOP/target"
WORK=$(mktemp -d "$TOP/target/bench-iso.XXXXXX")
TENPID=
cleanup() {
  [ -n "$TENPID" ] && kill "$TENPID" 2>/dev/null && wait "$TENPID" 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

APP=$WORK/app
mkdir -p "$APP"
cat >"$APP/app.py" <<'PY'
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
        self.wfile.flush()
        if self.path == "/exit":
            os._exit(0)


ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
PY
case $APP_KIND in
  c)
    if command -v musl-gcc >/dev/null; then
      musl-gcc -static -Os -s -o "$APP/app" tests/fixtures/tiny_app.c
    else
      cc -static -Os -s -o "$APP/app" tests/fixtures/tiny_app.c 2>/dev/null \
        || cc -Os -o "$APP/app" tests/fixtures/tiny_app.c
    fi
    CMD="$APP/app"; ARGS="[]" ;;
  python) CMD="$PY"; ARGS='["app.py"]' ;;
  *) echo "APP is c or python" >&2; exit 1 ;;
esac

LISTEN=$($PY -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
LOW=$((20000 + RANDOM % 9000))
DATA=$WORK/data
{
  cat <<CONF
[settings]
data_dir = "$DATA"
domain = "localhost"
port_range = [$LOW, $((LOW + 100))]
health_check_interval = 30
backoff_base_ms = 100
CONF
  for level in process namespace sandbox; do
    cat <<CONF

[service.$level]
command = "$CMD"
args = $ARGS
workdir = "$APP"
isolation = "$level"
restart = "on-failure"
CONF
  done
} >"$WORK/tenement.toml"

. "$TOP/tests/bench/lib.sh"
serve_ten "$TEN" "$WORK/tenement.toml" "$DATA" "$LISTEN" "$WORK/serve.log"

"$PY" - "$APP" "$DATA" "$LISTEN" "$ROUNDS" "$RSS_INSTANCES" "$TENPID" "$CMD" "$ARGS" <<'PY'
import json
import os
import socket
import statistics
import subprocess
import sys
import time

app, data, listen = sys.argv[1], sys.argv[2], int(sys.argv[3])
rounds, rss_n, tenpid = int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
program = [sys.argv[7]] + json.loads(sys.argv[8])
ten_sock = os.path.join(data, ".tenement", "ten.sock")
LEVELS = ("process", "namespace", "sandbox")
DEADLINE = 20


def api(method, path, body=None):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(DEADLINE)
    s.connect(ten_sock)
    raw = json.dumps(body).encode() if body is not None else b""
    s.sendall(f"{method} {path} HTTP/1.1\r\nHost: ten\r\nConnection: close\r\n"
              f"Content-Type: application/json\r\nContent-Length: {len(raw)}\r\n\r\n".encode() + raw)
    out = b""
    while chunk := s.recv(65536):
        out += chunk
    s.close()
    head, _, body = out.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    if status >= 300:
        raise SystemExit(f"{method} {path}: {status} {body[:300]!r}")
    return json.loads(body) if body.strip() else None


def instance(key):
    for inst in api("GET", "/api/instances"):
        if inst["instance"] == key:
            return inst
    return None


def wait_state(key, want):
    end = time.time() + DEADLINE
    while time.time() < end:
        inst = instance(key)
        if inst and inst["state"] == want:
            return inst
        time.sleep(0.005)
    raise SystemExit(f"{key} not {want} within {DEADLINE}s: {instance(key)}")


def get(host, path="/"):
    """GET through tenement; returns when the first byte arrives."""
    s = socket.create_connection(("127.0.0.1", listen), timeout=DEADLINE)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    first = s.recv(1)
    rest = first
    while chunk := s.recv(65536):
        rest += chunk
    s.close()
    if not rest.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"GET {path} Host {host}: {rest[:200]!r}")
    return first


def spawn(level, name):
    t0 = time.perf_counter()
    api("POST", "/api/instances/spawn", {"service": level, "id": name, "wait": True})
    get(f"{name}.{level}.localhost")
    return time.perf_counter() - t0


def stop(level, name):
    api("DELETE", f"/api/instances/{level}:{name}")


def wake(level):
    host = f"w.{level}.localhost"
    get(host, "/exit")
    wait_state(f"{level}:w", "sleeping")
    t0 = time.perf_counter()
    get(host)
    return time.perf_counter() - t0


def bwrap_argv():
    argv = ["bwrap", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup",
            "--die-with-parent", "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]
    for d in ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib64", "/lib32"):
        if os.path.islink(d):
            argv += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            argv += ["--ro-bind", d, d]
    return argv + ["--ro-bind", app, app, "--chdir", app, "--hostname", "b"]


BWRAP = bwrap_argv()


def launched(wrap):
    """exec of [wrap] python3 app.py to the first byte of GET / (1 ms polls)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PORT=str(port))
    t0 = time.perf_counter()
    p = subprocess.Popen(wrap + program, env=env, cwd=app,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        end = t0 + DEADLINE
        while True:
            s = socket.socket()
            try:
                s.connect(("127.0.0.1", port))
                break
            except OSError:
                s.close()
                if time.perf_counter() > end or p.poll() is not None:
                    raise SystemExit(f"{(wrap + program)[0]} never accepted")
                time.sleep(0.001)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        s.recv(1)
        took = time.perf_counter() - t0
        s.close()
    finally:
        p.kill()
        p.wait()
    return took


def field_kib(path, name):
    with open(path) as f:
        for line in f:
            if line.startswith(name):
                return int(line.split()[1])
    return 0


def rss_kib(pid):
    return field_kib(f"/proc/{pid}/status", "VmRSS:")


def pss_kib(pid):
    """Proportional: shared pages (the binary, libc) split among users."""
    return field_kib(f"/proc/{pid}/smaps_rollup", "Pss:")


def stats(xs):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return statistics.median(xs) * 1000, p90 * 1000


def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


load_before = loadavg()
for level in LEVELS:
    api("POST", "/api/instances/spawn", {"service": level, "id": "w", "wait": True})
    # One of each first: page cache and the first cgroup are not measured.
    spawn(level, "warm")
    stop(level, "warm")

spawns = {lv: [] for lv in LEVELS}
wakes = {lv: [] for lv in LEVELS}
floor, bwrap = [], []
for i in range(rounds):
    # The order turns each round, so no level always follows the stops.
    order = LEVELS[i % 3:] + LEVELS[:i % 3]
    for level in order:
        spawns[level].append(spawn(level, f"s{i}"))
        wakes[level].append(wake(level))
    floor.append(launched([]))
    bwrap.append(launched(BWRAP))
    for level in LEVELS:
        stop(level, f"s{i}")

load_after = loadavg()
# RSS: the server with rss_n instances of one level running at a time.
rss = {}
for level in LEVELS:
    time.sleep(0.2)
    before = rss_kib(tenpid)
    names = [f"r{j}" for j in range(rss_n)]
    for n in names:
        api("POST", "/api/instances/spawn", {"service": level, "id": n, "wait": True})
    time.sleep(0.2)
    during = rss_kib(tenpid)
    pids = [instance(f"{level}:{n}")["pid"] for n in names]
    own = None
    if level != "process":
        own = (statistics.median(rss_kib(p) for p in pids), statistics.median(pss_kib(p) for p in pids))
    for n in names:
        stop(level, n)
    rss[level] = (before, during, (during - before) / rss_n, own)

fl_med, fl_p90 = stats(floor)
bw_med, bw_p90 = stats(bwrap)
pr_spawn = stats(spawns["process"])[0]
pr_wake = stats(wakes["process"])[0]
print(f"\n### Isolation: spawn-to-serving and wake ({os.path.basename(program[0])}, {rounds} rounds, ms)\n")
print(f"Load average (1, 5, 15 min) before: {load_before}; after: {load_after}.\n")
print("| level | spawn median | spawn p90 | vs process | wake median | wake p90 | vs process | vs bwrap (wake) |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for level in LEVELS:
    sm, sp = stats(spawns[level])
    wm, wp = stats(wakes[level])
    print(f"| {level} | {sm:.1f} | {sp:.1f} | {sm - pr_spawn:+.1f} | {wm:.1f} | {wp:.1f} | "
          f"{wm - pr_wake:+.1f} | {wm - bw_med:+.1f} ({wm / bw_med:.2f}x) |")
print(f"| app alone (exec to first byte) | | | | {fl_med:.1f} | {fl_p90:.1f} | {fl_med - pr_wake:+.1f} | |")
print(f"| bwrap (exec to first byte) | | | | {bw_med:.1f} | {bw_p90:.1f} | {bw_med - pr_wake:+.1f} | 1.00x |")

print(f"\n### Isolation: memory ({rss_n} instances of a level running)\n")
print("| level | ten serve RSS before KiB | with instances KiB | per instance KiB | tenement init RSS / PSS KiB |")
print("|---|---:|---:|---:|---:|")
for level in LEVELS:
    before, during, per, own = rss[level]
    init = "" if own is None else f"{own[0]:.0f} / {own[1]:.0f}"
    print(f"| {level} | {before} | {during} | {per:.0f} | {init} |")
PY
