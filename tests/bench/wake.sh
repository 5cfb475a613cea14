#!/usr/bin/env bash
# Wake latency and spawn-to-serving, printed as a markdown table.
#
# The app is Python's http.server (SimpleHTTPRequestHandler on a
# ThreadingHTTPServer) that also takes a passed socket (fd 3) and exits 0 on
# GET /exit, which under restart = "on-failure" puts the instance to sleep:
# that is how each round gets a sleeping instance without waiting for
# idle_timeout.
#
# - floor: the same app started by a tiny launcher, time from just before
#   exec to the first byte of GET / (connect polled every 1 ms); with a
#   socket bound by the launcher and passed as fd 3 too. (That one is
#   faster on its own: http.server's bind path calls socket.getfqdn.)
# - wake: time to first byte (curl's time_starttransfer) of GET / through
#   tenement to a sleeping instance, with and without socket_activation.
# - spawn: wall time of `ten spawn SVC:ID --wait` plus the first byte of
#   GET / to the new instance.
# Median and p90 of ROUNDS (20) each. Standalone: needs target/release/ten
# (built if missing), python3 and curl.
set -euo pipefail

ROUNDS=${ROUNDS:-20}
cd "$(dirname "$0")/../.."
TOP=$PWD
TEN=${TEN:-$TOP/target/release/ten}
[ -x "$TEN" ] || cargo build --release
command -v python3 >/dev/null && command -v curl >/dev/null || {
  echo "wake.sh needs python3 and curl" >&2
  exit 1
}

WORK=$(mktemp -d /tmp/ten-wake.XXXXXX)
TENPID=
cleanup() {
  [ -n "$TENPID" ] && kill "$TENPID" 2>/dev/null && wait "$TENPID" 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

cat >"$WORK/app.py" <<'PY'
import os
import socket
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer


class Handler(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/exit":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            self.wfile.flush()
            os._exit(0)
        return super().do_GET()


class FromFd(ThreadingHTTPServer):
    def __init__(self, sock):
        super().__init__(sock.getsockname(), Handler, bind_and_activate=False)
        self.socket = sock


if os.environ.get("LISTEN_FDS") == "1":
    server = FromFd(socket.socket(fileno=3))
else:
    server = ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler)
server.serve_forever()
PY

# The interpreter itself, not a wrapper (pyenv shims add ~40 ms of bash):
# tenement and the floor launcher must start the very same program.
PY=$(python3 -c 'import sys; print(sys.executable)')
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
LISTEN=$(free_port)
LOW=$((20000 + RANDOM % 9000))
DATA=$WORK/data
cat >"$WORK/tenement.toml" <<CONF
[settings]
data_dir = "$DATA"
domain = "localhost"
port_range = [$LOW, $((LOW + 60))]
health_check_interval = 30
backoff_base_ms = 100

# Both at the process level, as the floor's launcher starts the app (as
# root the default would be namespace); what other levels add is measured
# on its own.
[service.plain]
command = "$PY"
args = ["$WORK/app.py"]
workdir = "$WORK"
restart = "on-failure"
max_instances = 0
isolation = "process"

[service.sa]
command = "$PY"
args = ["$WORK/app.py"]
workdir = "$WORK"
restart = "on-failure"
socket_activation = true
isolation = "process"
CONF

"$TEN" serve --config "$WORK/tenement.toml" --data-dir "$DATA" --port "$LISTEN" --bind 127.0.0.1 \
  >"$WORK/serve.log" 2>&1 &
TENPID=$!
for _ in $(seq 200); do
  grep -q "listening on" "$WORK/serve.log" 2>/dev/null && break
  sleep 0.05
done

"$PY" - "$TEN" "$WORK" "$DATA" "$LISTEN" "$ROUNDS" <<'PY'
import json
import os
import socket
import statistics
import subprocess
import sys
import time

ten, work, data, listen, rounds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
app = os.path.join(work, "app.py")
sock_path = os.path.join(data, ".tenement", "ten.sock")


def api(path, method="GET"):
    out = subprocess.run(
        ["curl", "-sS", "-X", method, "--unix-socket", sock_path, "http://ten" + path],
        capture_output=True, check=True,
    )
    return json.loads(out.stdout)


def state(key):
    for inst in api("/api/instances"):
        if inst["instance"] == key:
            return inst["state"]
    return None


def wait_state(key, want, timeout=20):
    end = time.time() + timeout
    while time.time() < end:
        if state(key) == want:
            return
        time.sleep(0.01)
    raise SystemExit(f"{key} not {want} within {timeout}s")


def ttfb(host, path="/"):
    """Seconds to the first byte of GET path through tenement (curl)."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{time_starttransfer}",
         "-H", f"Host: {host}", f"http://127.0.0.1:{listen}{path}"],
        capture_output=True, check=True, text=True,
    )
    code, t = out.stdout.split()
    if code != "200":
        raise SystemExit(f"GET {path} Host {host}: {code}")
    return float(t)


def first_byte(port, deadline):
    """Connect every 1 ms until it accepts, send GET /, wait for a byte.
    Returns (accepted_at, first_byte_at)."""
    while True:
        s = socket.socket()
        try:
            s.connect(("127.0.0.1", port))
            break
        except OSError:
            s.close()
            if time.perf_counter() > deadline:
                raise SystemExit("app never accepted")
            time.sleep(0.001)
    accepted = time.perf_counter()
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    s.recv(1)
    got = time.perf_counter()
    s.close()
    return accepted, got


def floor(activated):
    """The app alone: exec to first byte, with our own launcher."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = dict(os.environ, PORT=str(port))
    listener = None
    pass_fds = ()
    if activated:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(128)
        env["LISTEN_FDS"] = "1"
        os.dup2(listener.fileno(), 3, inheritable=True) if listener.fileno() != 3 else None
        pass_fds = (3,)
    t0 = time.perf_counter()
    p = subprocess.Popen([sys.executable, app], env=env, cwd=work, pass_fds=pass_fds,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        accepted, got = first_byte(port, t0 + 20)
    finally:
        p.kill()
        p.wait()
        if listener is not None:
            if listener.fileno() != 3:
                os.close(3)
            listener.close()
    return accepted - t0, got - t0


def wake(service):
    """One wake of {service}:w: put it to sleep (the app exits 0 under
    on-failure), then time the first byte of GET /."""
    key, host = f"{service}:w", f"w.{service}.localhost"
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", f"Host: {host}",
                    f"http://127.0.0.1:{listen}/exit"], check=False)
    wait_state(key, "sleeping")
    return ttfb(host)


def spawn():
    out = []
    for i in range(rounds):
        key = f"plain:s{i}"
        t0 = time.perf_counter()
        subprocess.run([ten, "--data-dir", data, "--config", os.path.join(work, "tenement.toml"),
                        "spawn", key, "--wait"], check=True, capture_output=True)
        t = time.perf_counter() - t0 + ttfb(f"s{i}.plain.localhost")
        out.append(t)
        subprocess.run([ten, "--data-dir", data, "--config", os.path.join(work, "tenement.toml"),
                        "stop", key], check=True, capture_output=True)
    return out


def stats(xs):
    xs = sorted(xs)
    p90 = xs[min(len(xs) - 1, int(round(0.9 * (len(xs) - 1))))]
    return statistics.median(xs) * 1000, p90 * 1000


for svc in ("plain", "sa"):
    subprocess.run([ten, "--data-dir", data, "--config", os.path.join(work, "tenement.toml"),
                    "spawn", f"{svc}:w", "--wait"], check=True)

# Interleaved, so load from other work on the box hits every measure alike.
floor_plain, floor_sa, wake_plain, wake_sa = [], [], [], []
for _ in range(rounds):
    floor_plain.append(floor(False))
    wake_plain.append(wake("plain"))
    floor_sa.append(floor(True))
    wake_sa.append(wake("sa"))
spawned = spawn()

fa_med, fa_p90 = stats([a for a, _ in floor_plain])
fb_med, fb_p90 = stats([b for _, b in floor_plain])
sb_med, sb_p90 = stats([b for _, b in floor_sa])
wp_med, wp_p90 = stats(wake_plain)
ws_med, ws_p90 = stats(wake_sa)
sp_med, sp_p90 = stats(spawned)

print(f"\n### Wake latency ({rounds} rounds, ms)\n")
print("| measure | median | p90 | vs floor (median) |")
print("|---|---:|---:|---:|")
print(f"| floor: exec to accepting (app alone, 1 ms polls) | {fa_med:.1f} | {fa_p90:.1f} | |")
print(f"| floor: exec to first byte of GET / | {fb_med:.1f} | {fb_p90:.1f} | 1.00x |")
print(f"| floor, socket passed as fd 3: exec to first byte | {sb_med:.1f} | {sb_p90:.1f} | {sb_med / fb_med:.2f}x |")
print(f"| wake through tenement: first byte | {wp_med:.1f} | {wp_p90:.1f} | {wp_med / fb_med:.2f}x ({wp_med - fb_med:+.1f} ms) |")
print(f"| wake with socket_activation: first byte | {ws_med:.1f} | {ws_p90:.1f} | {ws_med / fb_med:.2f}x ({ws_med - fb_med:+.1f} ms; {ws_med - sb_med:+.1f} ms vs fd-3 floor) |")
print(f"| `ten spawn --wait` + first byte | {sp_med:.1f} | {sp_p90:.1f} | {sp_med / fb_med:.2f}x |")
PY
