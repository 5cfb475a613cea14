# Shared by the bench scripts (sourced): start `ten serve` and wait for it.

# serve_ten TEN CONFIG DATA PORT LOG: starts `ten serve` on 127.0.0.1:PORT in
# the background, sets TENPID, and waits (10 s at most) until it listens;
# returns 1 with its log on stderr when it does not.
serve_ten() {
  "$1" serve --config "$2" --data-dir "$3" --port "$4" --bind 127.0.0.1 >"$5" 2>&1 &
  TENPID=$!
  for _ in $(seq 200); do
    grep -q "listening on" "$5" 2>/dev/null && return 0
    sleep 0.05
  done
  cat "$5" >&2
  return 1
}
