#!/usr/bin/env bash
# `ten move` under load, printed as a markdown table: for a notes:alice
# whose data dir holds SIZES (10 MB, 1 GB) of extra data, the wall time of
# `ten move` from node A to node B (two `ten serve` on 127.0.0.2 and .3,
# release build), the longest time one client request took while it ran
# (the pause a client saw: requests are held from `stop` to `moved`), the
# requests the source forwarded before the edge was flipped, and the
# failed requests (must be 0). A real HAProxy on 127.0.0.1 routes by the
# exported map; `--haproxy-socket` flips it. The client is one Python loop
# of POSTs through HAProxy. Standalone: needs target/release/ten (built if
# missing), python3 and haproxy.
set -euo pipefail

SIZES=${SIZES:-"10 1024"}
cd "$(dirname "$0")/../.."
TOP=$PWD
TEN=${TEN:-$TOP/target/release/ten}
[ -x "$TEN" ] || cargo build --release
for tool in python3 haproxy; do
  command -v $tool >/dev/null || { echo "move.sh needs $tool" >&2; exit 1; }
done

WORK=$(mktemp -d /tmp/ten-move.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] && echo "kept $WORK" >&2 || rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('$1',0)); print(s.getsockname()[1])"; }

# node NAME IP LOW: config, token, `ten serve` in the background.
node() {
  local name=$1 ip=$2 low=$3 dir=$WORK/$1
  mkdir -p "$dir/data"
  cat >"$dir/tenement.toml" <<TOML
[settings]
domain = "localhost"
port_range = [$low, $((low + 99))]

[service.notes]
command = "python3"
args = ["-u", "$TOP/examples/notes/app.py"]
health = "/health"
startup_timeout = 60
TOML
  local port; port=$(free_port "$ip")
  "$TEN" token-gen --data-dir "$dir/data" --config "$dir/tenement.toml" \
    2>/dev/null | awk '/^  ten_/ { print $1 }' >"$dir/token"
  "$TEN" serve --config "$dir/tenement.toml" --data-dir "$dir/data" \
    --bind "$ip" --port "$port" >"$dir/serve.log" 2>&1 &
  PIDS+=($!)
  echo "$ip:$port" >"$dir/addr"
  for _ in $(seq 200); do
    [ -S "$dir/data/.tenement/ten.sock" ] && return 0
    sleep 0.05
  done
  echo "$name did not start" >&2; cat "$dir/serve.log" >&2; exit 1
}
ten() { local n=$1; shift; "$TEN" --config "$WORK/$n/tenement.toml" --data-dir "$WORK/$n/data" "$@"; }

node a 127.0.0.2 41000
node b 127.0.0.3 41200
ten a spawn notes:alice --wait >/dev/null
{ ten a export --haproxy-map --node node-a; ten b export --haproxy-map --node node-b; } >"$WORK/tenement.map"
EDGE_PORT=$(free_port 127.0.0.1)
cat >"$WORK/haproxy.cfg" <<CFG
global
    stats socket $WORK/admin.sock mode 600 level admin
defaults
    mode http
    timeout connect 2s
    timeout client 120s
    timeout server 120s
frontend tenants
    bind 127.0.0.1:$EDGE_PORT
    use_backend %[req.hdr(host),lower,map($WORK/tenement.map)]
backend node-a
    option httpchk GET /health
    server node-a $(cat "$WORK/a/addr") check inter 1s
backend node-b
    option httpchk GET /health
    server node-b $(cat "$WORK/b/addr") check inter 1s
CFG
haproxy -db -f "$WORK/haproxy.cfg" >"$WORK/haproxy.log" 2>&1 &
PIDS+=($!)

cat >"$WORK/client.py" <<'PY'
import http.client, sys, os, time
port, stop, out = int(sys.argv[1]), sys.argv[2], sys.argv[3]
n = failed = 0
longest = 0.0
while not os.path.exists(stop) and n < 200000:
    t = time.monotonic()
    try:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        c.request("POST", "/", body=b"note-%d" % n, headers={"Host": "alice.notes.localhost"})
        r = c.getresponse(); r.read(); c.close()
        if r.status != 201: failed += 1
    except Exception:
        failed += 1
    longest = max(longest, time.monotonic() - t)
    n += 1
open(out, "w").write("%d %d %.0f\n" % (n, failed, longest * 1000))
PY

for _ in $(seq 100); do
  python3 -c "import socket; socket.create_connection(('127.0.0.1', $EDGE_PORT), 1)" 2>/dev/null && break
  sleep 0.05
done

echo "| data | move time | longest client request | forwarded before flip | failed requests |"
echo "|---|---|---|---|---|"
from=a; to=b
for mb in $SIZES; do
  dir=$WORK/$from/data/notes/alice
  dd if=/dev/urandom of="$dir/blob.bin" bs=1M count="$mb" status=none
  rm -f "$WORK/stop" "$WORK/client.out"
  python3 "$WORK/client.py" "$EDGE_PORT" "$WORK/stop" "$WORK/client.out" &
  CLIENT=$!
  sleep 1
  t0=$(date +%s.%N)
  ten $from move notes:alice --to "http://$(cat "$WORK/$to/addr")" --to-token "$(cat "$WORK/$to/token")" \
    --to-node "node-$to" --haproxy-socket "$WORK/admin.sock" >"$WORK/move-$mb.out"
  t1=$(date +%s.%N)
  sleep 1
  touch "$WORK/stop"; wait $CLIENT
  read -r n failed longest <"$WORK/client.out"
  fwd=$(ten $from logs notes:alice --search "edge flipped" | tail -1 | sed -n 's/.*; \([0-9]*\) requests forwarded.*/\1/p')
  secs=$(python3 -c "print('%.2f s' % ($t1 - $t0))")
  size=$([ "$mb" -ge 1024 ] && echo "$((mb / 1024)) GB" || echo "$mb MB")
  echo "| $size | $secs | $longest ms | ${fwd:-?} | $failed of $n |"
  rm -f "$WORK/$to/data/notes/alice/blob.bin"
  tmp=$from; from=$to; to=$tmp
done
