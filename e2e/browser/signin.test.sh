#!/usr/bin/env bash
# Broker sign-in in a real browser (issue 19): Debian's chromium, driven by
# e2e/browser/signin.mjs, against the real IdP (e2e/idp, npm oidc-provider) and the
# gateway in broker mode. The MCP client side is played by the script (a loopback
# redirect URI and a Client ID Metadata Document it serves itself).
#   run by e2e/browser.sh, which sets GATEWAY_BIN and NODE
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
: "${GATEWAY_BIN:?run me through e2e/browser.sh}" "${NODE:?run me through e2e/browser.sh}"
scripts/deps.sh idp >/dev/null

TMP="$(mktemp -d -t chmcp-signin.XXXXXX)"
PIDS=()
cleanup() {
  local status=$?
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [ $status -ne 0 ]; then
    for f in "$TMP"/*.log; do echo "---- $f"; tail -n 30 "$f"; done
  fi
  rm -rf "$TMP"
  exit $status
}
trap cleanup EXIT

free_port() { "$NODE" -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
wait_port() {
  for _ in $(seq 1 300); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.05
  done
  echo "nothing listens on port $1 ($2)" >&2; return 1
}

# The IdP exits when its stdin closes: it reads from a pipe we hold open.
mkfifo "$TMP/idp.stdin"
node e2e/idp/server.js "$TMP/idp-state" <"$TMP/idp.stdin" >"$TMP/idp.log" 2>&1 &
PIDS+=($!)
exec 9>"$TMP/idp.stdin"
for _ in $(seq 1 200); do grep -q '^IDP_READY ' "$TMP/idp.log" 2>/dev/null && break; sleep 0.05; done
READY="$(grep '^IDP_READY ' "$TMP/idp.log" | head -1 | cut -d' ' -f2-)"
[ -n "$READY" ] || { echo "the IdP did not start" >&2; exit 1; }
field() { "$NODE" -e 'console.log(JSON.parse(process.argv[1])[process.argv[2]])' "$READY" "$1"; }

GW_PORT=$(free_port)
CLIENT_PORT=$(free_port)
INSPECTOR_PORT=$(free_port)
SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
# Multi-cluster broker mode; `otel` never needs its ClickHouse here (tools/list is
# answered by the gateway). The Inspector's origin is allowed for its direct connection.
cat >"$TMP/gateway.yaml" <<YAML
server:
  address: 127.0.0.1
  port: $GW_PORT
  allowed_origins: ["http://127.0.0.1:$INSPECTOR_PORT", "http://localhost:$INSPECTOR_PORT"]
  oauth:
    enabled: true
    broker: true
    display_name: "Acme Analytics (browser test)"
    issuer: "$(field issuer)"
    audience: "$(field audience)"
    public_auth_server_url: "http://127.0.0.1:$GW_PORT"
    client_id: "$(field broker_client_id)"
    client_secret: "$(field client_secret)"
    signing_secret: "$SECRET"
    upstream_offline_access: true
    dev_allow_insecure_client_metadata: true
clickhouse:
  host: 127.0.0.1
  port: 9
multicluster:
  enabled: true
  cluster_allowlist: [otel]
  clusters: {otel: {port: 9}}
YAML
"$GATEWAY_BIN" serve --config "$TMP/gateway.yaml" >"$TMP/gateway.log" 2>&1 &
PIDS+=($!)
wait_port "$GW_PORT" gateway

GATEWAY_URL="http://127.0.0.1:$GW_PORT" IDP_URL="$(field issuer)" CLIENT_PORT="$CLIENT_PORT" \
  INSPECTOR_PORT="$INSPECTOR_PORT" CLUSTER=otel \
  "$NODE" e2e/browser/signin.mjs
