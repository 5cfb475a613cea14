#!/usr/bin/env bash
# `make demo`: runs the notes example under tenement on port $PORT (8080),
# stores a note for alice and one for bob, shows they are separate, and keeps
# the server in the foreground until Ctrl-C. Everything it creates lives in a
# temp folder that is removed on exit.
set -euo pipefail

PORT="${PORT:-8080}"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
TEN="${TEN:-$ROOT/target/release/ten}"
CONFIG="$ROOT/examples/notes/tenement.toml"
DATA="$(mktemp -d "${TMPDIR:-/tmp}/tenement-demo.XXXXXX")"
URL="http://127.0.0.1:$PORT"
SERVER=""

cleanup() {
    trap - EXIT INT TERM
    if [ -n "$SERVER" ] && kill -0 "$SERVER" 2>/dev/null; then
        echo
        echo "stopping ten serve (pid $SERVER)..."
        kill -TERM "$SERVER" 2>/dev/null || true
        wait "$SERVER" 2>/dev/null || true
    fi
    rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Polls "$@" for up to $1 seconds.
wait_for() {
    local secs=$1; shift
    local tries=$((secs * 10))
    while ! "$@" >/dev/null 2>&1; do
        tries=$((tries - 1))
        if [ "$tries" -le 0 ]; then return 1; fi
        sleep 0.1
    done
}

command -v python3 >/dev/null || { echo "demo: python3 is needed for the example app" >&2; exit 1; }
command -v curl >/dev/null || { echo "demo: curl is needed" >&2; exit 1; }

echo "== minting an admin token (saved to $DATA/api_token)"
TOKEN="$("$TEN" --data-dir "$DATA" token-gen | awk '/^  ten_/ { print $1 }')"

echo "== starting: ten serve --config examples/notes/tenement.toml --port $PORT"
"$TEN" serve --config "$CONFIG" --data-dir "$DATA" --port "$PORT" --bind 127.0.0.1 &
SERVER=$!

if ! wait_for 15 curl -fsS "$URL/health"; then
    echo "demo: ten serve did not answer on $URL/health" >&2
    exit 1
fi
for tenant in alice bob; do
    if ! wait_for 20 curl -fsS -H "Host: $tenant.notes.localhost" "$URL/health"; then
        echo "demo: notes:$tenant did not become ready" >&2
        exit 1
    fi
done

echo
echo "== adding a note for alice and one for bob"
curl -sS -H 'Host: alice.notes.localhost' --data-binary 'buy milk' "$URL/"
curl -sS -H 'Host: bob.notes.localhost' --data-binary 'fix the bike' "$URL/"

echo
echo "== reading them back: each tenant sees only its own"
curl -sS -H 'Host: alice.notes.localhost' "$URL/"
curl -sS -H 'Host: bob.notes.localhost' "$URL/"

echo
echo "== ten ps"
"$TEN" --data-dir "$DATA" ps

# The level the instances actually run at, as ten reports it.
LEVEL="$("$TEN" --data-dir "$DATA" ps --json \
    | python3 -c 'import json, sys; print(", ".join(sorted({i["isolation"] for i in json.load(sys.stdin)})))')"
echo
case "$LEVEL" in
    namespace) echo "== isolation: namespace (the default as root): each tenant has its own pid, mount and uts namespaces, its own uid, and sees only its data dir" ;;
    process) echo "== isolation: process (the default without root): each tenant is its own process group; run as root for namespace isolation" ;;
    *) echo "== isolation: $LEVEL" ;;
esac

cat <<MSG

Try (in another terminal):
  curl -H 'Host: alice.notes.localhost' $URL/
  curl -H 'Host: bob.notes.localhost' --data-binary 'call mum' $URL/
  curl http://alice.notes.localhost:$PORT/          # curl resolves *.localhost itself
  curl -H 'Authorization: Bearer $TOKEN' $URL/api/instances
  $TEN --data-dir $DATA ps
  $TEN --data-dir $DATA spawn notes:carol --wait
  $TEN --data-dir $DATA logs notes:alice

ten serve runs in the foreground; press Ctrl-C to stop it (the temp data dir
$DATA is removed).
MSG

wait "$SERVER"
