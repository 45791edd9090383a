# Sourced by the broker e2e scripts (e2e/broker.sh, e2e/browser/signin.test.sh): a
# temporary directory and process list cleaned up on exit (logs shown on failure),
# waiting for a port, and the test IdP (e2e/idp) started on a free port.
#   after sourcing: TMP, PIDS, wait_port PORT WHAT, start_idp (sets IDP_READY, the JSON
#   of the IdP's ready line), idp_field NAME (reads IDP_READY with $1 as the key).
TMP="$(mktemp -d -t chmcp-broker-e2e.XXXXXX)"
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $status -ne 0 ]; then
    for f in "$TMP"/*.log; do echo "---- $f"; tail -n 40 "$f"; done
  fi
  rm -rf "$TMP"
  exit $status
}
trap cleanup EXIT

wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1 ($2)" >&2; return 1
}

# The IdP exits when its stdin closes, so it reads from a pipe this shell holds open.
start_idp() {
  mkfifo "$TMP/idp.stdin"
  node e2e/idp/server.js "$TMP/idp-state" <"$TMP/idp.stdin" >"$TMP/idp.log" 2>&1 &
  PIDS+=($!)
  exec 9>"$TMP/idp.stdin"
  for _ in $(seq 1 200); do grep -q '^IDP_READY ' "$TMP/idp.log" 2>/dev/null && break; sleep 0.05; done
  IDP_READY="$(grep '^IDP_READY ' "$TMP/idp.log" | head -1 | cut -d' ' -f2-)"
  [ -n "$IDP_READY" ] || { echo "the IdP did not start" >&2; exit 1; }
}

idp_field() { node -e 'console.log(JSON.parse(process.argv[1])[process.argv[2]])' "$IDP_READY" "$1"; }
