#!/usr/bin/env bash
# Wake latency and spawn-to-serving against the app's own start, printed as
# a markdown table.
#
# The app is Python's http.server (SimpleHTTPRequestHandler on a
# ThreadingHTTPServer) with a /health path (200 "ok"); it also takes a
# passed socket (fd 3) and exits 0 on GET /exit, which under restart =
# "on-failure" puts the instance to sleep: that is how each round gets a
# sleeping instance without waiting for idle_timeout. It is started by the
# real interpreter ($PY, default /usr/bin/python3), never a wrapper script
# (a pyenv shim adds ~40 ms of bash): tenement and the floor's launcher
# start the very same program.
#
# Each round, interleaved so load from other work on the box hits every
# measure alike:
# - floor: the app started by a tiny launcher, from its exec to the first
#   byte of GET / (connect polled every 1 ms);
# - wake through tenement, no `health` set: from sending GET / to a
#   sleeping instance to its first byte;
# - wake through tenement, `health = "/health"`;
# - `ten spawn SVC:ID --wait` (from the command's exec, as the floor counts
#   from the app's) plus the first byte of GET / to the new instance; and
#   the same with the static musl `ten` as the command (the binary the
#   README installs; a static binary starts with fewer page faults than
#   the glibc one) when it is built ($TEN_MUSL, default
#   target/x86_64-unknown-linux-musl/release/ten);
# - floor with a socket bound by the launcher and passed as fd 3;
# - wake with socket_activation.
# Medians and p90 of ROUNDS (20), the difference of medians, and the median
# of the per-round differences against the floor measured next to it.
#
# The app's exec is timed by the kernel (the proc connector's exec event,
# CLOCK_MONOTONIC; needs root, else the floor counts from just before the
# launcher forks) and the app writes, on the same clock, when its first
# line runs and when it starts serving (listening). So each run splits
# into what comes before the exec (tenement's dispatch and launch, or
# nothing for the floor), the app's own start (exec to serving: Python
# starting, the same program either way, and where a busy box's noise
# goes), and serving to the first byte (noticing that it listens, the
# proxy, the app's answer). "Added" is a run's total less the app's own
# start: what tenement costs over the floor without Python's start-up
# variance, the figure the goals are judged on.
#
# Standalone: needs target/release/ten (built if missing), python3 and curl;
# the static musl build (`make static`) adds its row when present.
#
# TEN_BEFORE=PATH runs a second server from that binary (say, the build of
# the commit before a change) beside the first, with the same services on
# ports of its own, and times its wakes and its `ten spawn --wait` (with
# TEN_BEFORE as the command) in the same rounds; a last table gives each
# measure's added time with both builds. Compare like with like: with a
# musl TEN_BEFORE, pass TEN=<the musl build> too, so that both servers and
# both spawn commands are musl builds.
set -euo pipefail

ROUNDS=${ROUNDS:-20}
cd "$(dirname "$0")/../.."
TOP=$PWD
TEN=${TEN:-$TOP/target/release/ten}
[ -x "$TEN" ] || cargo build --release
TEN_MUSL=${TEN_MUSL:-$TOP/target/x86_64-unknown-linux-musl/release/ten}
[ -x "$TEN_MUSL" ] || TEN_MUSL=
if [ -n "${TEN_BEFORE:-}" ] && [ ! -x "$TEN_BEFORE" ]; then
  echo "wake.sh: TEN_BEFORE=$TEN_BEFORE is not an executable" >&2
  exit 1
fi
command -v curl >/dev/null || {
  echo "wake.sh needs curl" >&2
  exit 1
}
PY=${PY:-/usr/bin/python3}
[ -x "$PY" ] || PY=$(python3 -c 'import sys; print(sys.executable)') || {
  echo "wake.sh needs python3" >&2
  exit 1
}

WORK=$(mktemp -d /tmp/ten-wake.XXXXXX)
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do
    kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
  done
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/app.py" <<'PY'
import time

START = time.monotonic()
import os
import socket
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path in ("/exit", "/health"):
            body = b"ok"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            if self.path == "/exit":
                os._exit(0)
            return
        return super().do_GET()


class FromFd(ThreadingHTTPServer):
    def __init__(self, sock):
        super().__init__(sock.getsockname(), Handler, bind_and_activate=False)
        self.socket = sock


if os.environ.get("LISTEN_FDS") == "1":
    server = FromFd(socket.socket(fileno=3))
else:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
# When it started and when it listens, on the clock the bench reads too.
with open(os.environ["STAMPS"], "a") as f:
    f.write(f"{START} {time.monotonic()} {os.getpid()}\n")
server.serve_forever()
PY

free_port() { "$PY" -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
LOW=$((20000 + RANDOM % 9000))
service() { # dir, name, extra lines
  cat <<CONF
[service.$2]
command = "$PY"
args = ["$WORK/app.py"]
workdir = "$WORK"
restart = "on-failure"
max_instances = 0
isolation = "process"
$3
[service.$2.env]
STAMPS = "$1/stamps.$2"

CONF
}
# start NAME BINARY LOW: a server of BINARY in $WORK/NAME with ports LOW..LOW+60
# for its instances; prints its listening port.
start() {
  local dir=$WORK/$1 listen
  listen=$(free_port)
  mkdir -p "$dir"
  {
    cat <<CONF
[settings]
data_dir = "$dir/data"
domain = "localhost"
port_range = [$3, $(($3 + 60))]
health_check_interval = 30
backoff_base_ms = 100

# At the process level, as the floor's launcher starts the app (as root
# the default would be namespace); what other levels add is measured by
# tests/bench/isolation.sh.
CONF
    service "$dir" plain ""
    service "$dir" health 'health = "/health"'
    service "$dir" sa "socket_activation = true"
  } >"$dir/tenement.toml"
  "$2" serve --config "$dir/tenement.toml" --data-dir "$dir/data" --port "$listen" --bind 127.0.0.1 \
    >"$dir/serve.log" 2>&1 &
  PIDS+=("$!")
  for _ in $(seq 200); do
    grep -q "listening on" "$dir/serve.log" 2>/dev/null && break
    sleep 0.05
  done
  echo "$listen" >"$dir/port"
}
PIDS=()
start after "$TEN" "$LOW"
[ -z "${TEN_BEFORE:-}" ] || start before "$TEN_BEFORE" $((LOW + 100))

# Without favordynmods in effect a move into a v1 cgroup waits for an RCU
# grace period, and every start makes one (README, Resource limits): one
# move of this shell's helper into the cgroup it is in, timed, says which
# the figures had.
MOVE=$("$PY" - <<'PY'
import time
ours = {}
for line in open("/proc/self/cgroup"):
    _, ctrls, path = line.rstrip("\n").split(":", 2)
    for c in ctrls.split(","):
        ours[c] = path
for line in open("/proc/self/mountinfo"):
    left, right = line.split(" - ", 1)
    f, (fstype, _, opts) = left.split(), right.split()[:3]
    if fstype != "cgroup":
        continue
    c = next((c for c in opts.split(",") if c in ("pids", "memory", "cpu")), None)
    if c is None or c not in ours or not ours[c].startswith(f[3]):
        continue
    rel = ours[c][len(f[3]):].lstrip("/")
    t = time.perf_counter()
    try:
        with open(f"{f[4]}/{rel}/tasks".replace("//", "/"), "w") as tasks:
            tasks.write("0")
    except OSError:
        continue
    print(f"a v1 cgroup move took {(time.perf_counter() - t) * 1000:.2f} ms")
    break
else:
    print("no v1 cgroup move timed")
PY
)
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); interpreter $PY; $MOVE"
"$PY" - "$TEN" "$WORK" "$ROUNDS" "$TEN_MUSL" "${TEN_BEFORE:-}" <<'PY'
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import threading
import time

ten, work, rounds, ten_musl, ten_before = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
app = os.path.join(work, "app.py")
now = time.monotonic


class Server:
    """A running `ten serve` of binary `ten`, set up in work/`name`."""

    def __init__(self, name, ten):
        self.name, self.ten = name, ten
        self.dir = os.path.join(work, name)
        self.data = os.path.join(self.dir, "data")
        self.conf = os.path.join(self.dir, "tenement.toml")
        self.sock_path = os.path.join(self.data, ".tenement", "ten.sock")
        with open(os.path.join(self.dir, "port")) as f:
            self.listen = int(f.read())


after = Server("after", ten)
before = Server("before", ten_before) if ten_before else None

# fd 3 is the floor's passed socket while one runs, /dev/null otherwise, so
# no other socket of this script ever gets that number.
NULL = os.open("/dev/null", os.O_RDONLY)
if NULL == 3:
    NULL = os.dup(3)
else:
    os.dup2(NULL, 3, inheritable=False)

# exec events from the kernel's proc connector: pid -> CLOCK_MONOTONIC.
execs = {}


def watch_execs():
    try:
        s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, 11)  # NETLINK_CONNECTOR
        s.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE: a busy box execs a lot
        s.bind((0, 1))  # CN_IDX_PROC
        listen_msg = struct.pack("=IIIIHHI", 1, 1, 0, 0, 4, 0, 1)  # PROC_CN_MCAST_LISTEN
        s.send(struct.pack("=IHHII", 16 + len(listen_msg), 3, 0, 0, 0) + listen_msg)
    except OSError as e:
        print(f"(no exec events: {e}; the floor counts from the launcher's fork)")
        return False

    def read():
        while True:
            try:
                msg = s.recv(65536)
            except OSError:  # ENOBUFS: events were lost; later ones still come
                continue
            if len(msg) < 60:
                continue
            what, _cpu, ts = struct.unpack_from("=IIQ", msg, 36)
            if what == 2:  # PROC_EVENT_EXEC
                _pid, tgid = struct.unpack_from("=ii", msg, 52)
                execs[tgid] = ts / 1e9

    threading.Thread(target=read, daemon=True).start()
    return True


have_execs = watch_execs()


def ten_cmd(srv, *args, cli=None):
    return subprocess.run([cli or srv.ten, "--data-dir", srv.data, "--config", srv.conf, *args],
                          check=True, capture_output=True)


def api(srv, path):
    out = subprocess.run(["curl", "-sS", "--unix-socket", srv.sock_path, "http://ten" + path],
                         capture_output=True, check=True)
    return json.loads(out.stdout)


def wait_state(srv, key, want, timeout=20):
    end = now() + timeout
    while now() < end:
        if any(i["instance"] == key and i["state"] == want for i in api(srv, "/api/instances")):
            return
        time.sleep(0.01)
    raise SystemExit(f"{key} not {want} within {timeout}s ({srv.name})")


def first_byte_via_ten(srv, host):
    """(sent, first byte) of GET / through tenement, on our clock."""
    s = socket.create_connection(("127.0.0.1", srv.listen))
    sent = now()
    s.sendall(f"GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    head = s.recv(64)
    got = now()
    s.close()
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"GET / Host {host}: {head!r}")
    return sent, got


def first_byte_direct(port, deadline):
    """Connect every 1 ms until it accepts, send GET /, wait for a byte."""
    while True:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            break
        except OSError:
            s.close()
            if now() > deadline:
                raise SystemExit("app never accepted")
            time.sleep(0.001)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    s.recv(1)
    got = now()
    s.close()
    return got


def exec_time(pid, fallback):
    """When process `pid` exec'd, by the kernel's clock; `fallback` when
    no exec event is known."""
    at = execs.get(pid)
    for _ in range(100):  # the event may still be on its way
        if at is not None or not have_execs:
            break
        time.sleep(0.001)
        at = execs.get(pid)
    return fallback if at is None else at


def run(stamps, sent, got, before_exec):
    """One measure: the times of its steps, from the app's `stamps` file.
    `before_exec`: where it starts when no exec event is known (the
    launcher's fork)."""
    with open(stamps) as f:
        start, serving, pid = f.read().split("\n")[-2].split()
    exec_at = exec_time(int(pid), before_exec)
    if sent is None:  # the floor counts from the exec
        sent = exec_at
    return {"sent": sent, "exec": exec_at, "start": float(start), "serving": float(serving), "got": got}


def floor(activated):
    """The app alone, started by a tiny launcher."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PORT=str(port), STAMPS=os.path.join(work, "stamps.floor"))
    listener = None
    pass_fds = ()
    if activated:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        env["LISTEN_FDS"] = "1"
        os.dup2(listener.fileno(), 3, inheritable=True)
        pass_fds = (3,)
    t0 = now()
    p = subprocess.Popen([sys.executable, app], env=env, cwd=work, pass_fds=pass_fds,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        got = first_byte_direct(port, t0 + 20)
    finally:
        p.kill()
        p.wait()
        if listener is not None:
            os.dup2(NULL, 3, inheritable=False)
            listener.close()
    return run(os.path.join(work, "stamps.floor"), None, got, t0)


def wake(srv, service):
    """One wake of {service}:w: put it to sleep (the app exits 0 under
    on-failure), then time the first byte of GET /."""
    key, host = f"{service}:w", f"w.{service}.localhost"
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", f"Host: {host}",
                    f"http://127.0.0.1:{srv.listen}/exit"], check=False)
    wait_state(srv, key, "sleeping")
    sent, got = first_byte_via_ten(srv, host)
    return run(os.path.join(srv.dir, "stamps." + service), sent, got, sent)


def spawn(srv, id, cli=None):
    """`ten spawn --wait` of a new instance plus the first byte of GET /,
    `cli` being the `ten` that runs the command (the server's own binary
    unless given)."""
    key = f"plain:{id}"
    t0 = now()
    p = subprocess.Popen([cli or srv.ten, "--data-dir", srv.data, "--config", srv.conf,
                          "spawn", key, "--wait"],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"ten spawn {key} --wait ({srv.name}): {err.decode()}")
    _, got = first_byte_via_ten(srv, f"{id}.plain.localhost")
    # From the command's exec, as the floor counts from the app's: the
    # harness's own fork of it is no part of either.
    started = exec_time(p.pid, t0)
    r = run(os.path.join(srv.dir, "stamps.plain"), started, got, started)
    ten_cmd(srv, "stop", key)
    return r


for srv in filter(None, (after, before)):
    for svc in ("plain", "health", "sa"):
        ten_cmd(srv, "spawn", f"{svc}:w", "--wait")

names = ["floor", "wake", "wake_health", "spawn", "floor_fd3", "wake_sa"]
if ten_musl:
    names.insert(4, "spawn_musl")
# Measures also taken from TEN_BEFORE's server, as "NAME@before".
compared = ["wake", "wake_health", "spawn", "wake_sa"] if before else []
runs = {n: [] for n in names + [n + "@before" for n in compared]}


def both(name, measure):
    """Runs `measure(server)` on each server, the order alternating by round
    so neither always goes first."""
    pair = [(name, after)] + ([(name + "@before", before)] if name in compared else [])
    if i % 2:
        pair.reverse()
    for n, srv in pair:
        runs[n].append(measure(srv))


for i in range(rounds):
    runs["floor"].append(floor(False))
    both("wake", lambda srv: wake(srv, "plain"))
    both("wake_health", lambda srv: wake(srv, "health"))
    both("spawn", lambda srv: spawn(srv, f"s{i}"))
    if ten_musl:
        runs["spawn_musl"].append(spawn(after, f"m{i}", ten_musl))
    runs["floor_fd3"].append(floor(True))
    both("wake_sa", lambda srv: wake(srv, "sa"))


def med(xs):
    return statistics.median(xs)


def p90(xs):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]


def series(n, f):
    return [f(r) * 1000 for r in runs[n]]


total = {n: series(n, lambda r: r["got"] - r["sent"]) for n in runs}
own = {n: series(n, lambda r: r["serving"] - r["exec"]) for n in runs}
added = {n: [t - o for t, o in zip(total[n], own[n])] for n in runs}
rows = [
    ("floor: the app's own exec to first byte of GET / (1 ms polls)", "floor", None),
    ("wake through tenement, no `health`: first byte", "wake", "floor"),
    ("wake through tenement, `health = \"/health\"`: first byte", "wake_health", "floor"),
    ("`ten spawn --wait` + first byte", "spawn", "floor"),
    ("`ten spawn --wait` + first byte, static musl `ten` as the command", "spawn_musl", "floor"),
    ("floor, socket passed as fd 3: exec to first byte", "floor_fd3", None),
    ("wake with socket_activation: first byte", "wake_sa", "floor_fd3"),
]
print(f"\n### Wake latency ({rounds} rounds, ms)\n")
print("| measure | median | p90 | vs its floor: ratio, difference of medians | per-round differences, median | added over the app's own start, median | vs the floor's |")
print("|---|---:|---:|---:|---:|---:|---:|")
rows = [r for r in rows if r[1] in runs]
for label, n, base in rows:
    m, a = med(total[n]), med(added[n])
    if base is None:
        cmp, paired, gap = "", "", ""
    else:
        b = med(total[base])
        cmp = f"{m / b:.3f}x, {m - b:+.1f} ms"
        paired = f"{med([w - f for w, f in zip(total[n], total[base])]):+.1f} ms"
        gap = f"{a - med(added[base]):+.2f} ms"
    print(f"| {label} | {m:.1f} | {p90(total[n]):.1f} | {cmp} | {paired} | {a:.2f} | {gap} |")
print("\nWhere the time goes (medians, ms):\n")
print("| measure | before the exec | exec to first line | first line to serving | serving to first byte |")
print("|---|---:|---:|---:|---:|")
for label, n, _ in rows:
    parts = [series(n, f) for f in (
        lambda r: r["exec"] - r["sent"],
        lambda r: r["start"] - r["exec"],
        lambda r: r["serving"] - r["start"],
        lambda r: r["got"] - r["serving"],
    )]
    print(f"| {label.split(':')[0]} | " + " | ".join(f"{med(p):.2f}" for p in parts) + " |")
if before:
    print(f"\nThis build against TEN_BEFORE={ten_before} (its own server; its `ten` as the spawn command), same rounds, ms:\n")
    print("| measure | added over the app's own start, before | after | difference of medians | per-round differences, median | before the exec, before | after | serving to first byte, before | after |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, n, _ in rows:
        if n not in compared:
            continue
        b = n + "@before"
        parts = {k: [med(series(k, f)) for f in (
            lambda r: r["exec"] - r["sent"],
            lambda r: r["got"] - r["serving"],
        )] for k in (b, n)}
        paired = med([x - y for x, y in zip(added[n], added[b])])
        print(f"| {label.split(':')[0]} | {med(added[b]):.2f} | {med(added[n]):.2f} | "
              f"{med(added[n]) - med(added[b]):+.2f} | {paired:+.2f} | "
              f"{parts[b][0]:.2f} | {parts[n][0]:.2f} | {parts[b][1]:.2f} | {parts[n][1]:.2f} |")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
