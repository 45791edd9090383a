#!/usr/bin/env bash
# End to end, OAuth broker mode, with real parts (issue 6):
#   the official MCP Python SDK (2.x) -> chmcp gateway (broker) -> npm oidc-provider (IdP)
#   and for queries: gateway -> ClickHouse STAND-IN (e2e/broker/ch_standin.py: a modern
#   ClickHouse's HTTP authentication step) -> the real verifier -> the real ClickHouse 18.16.
# Everything listens on free loopback ports and is stopped on exit.
#   e2e/broker.sh            builds the gateway (cargo) unless GATEWAY_BIN names a binary
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

source bench/lib.sh
PY="$(scripts/deps.sh python)"
scripts/deps.sh clickhouse idp >/dev/null
GATEWAY_BIN=${GATEWAY_BIN:-$(gw_binary debug)}
svc_workdir broker-e2e

# ClickHouse 18.16, its own config on free ports.
ch_write_config "$WORK/ch"
ch_up

idp_up "$WORK"
ISSUER=$IDP_ISSUER AUDIENCE=$IDP_AUDIENCE IDP_CLIENT=$IDP_BROKER_CLIENT IDP_SECRET=$IDP_CLIENT_SECRET

# The real verifier, as ClickHouse's HTTP authentication server.
V_PORT=$(free_port)
cat >"$WORK/verify.yaml" <<YAML
listen: 127.0.0.1:$V_PORT
oauth: {issuer: "$ISSUER", audience: "$AUDIENCE"}
identity: {username_claim: email, require_email_verified: true}
YAML
"$GATEWAY_BIN" verify --config "$WORK/verify.yaml" >"$WORK/verify.log" 2>&1 &
SVC_PIDS+=($!)
wait_port "$V_PORT" verifier

# The stand-in for a modern ClickHouse's HTTP authentication, in front of 18.16.
S_PORT=$(free_port)
"$PY" e2e/broker/ch_standin.py --port "$S_PORT" --clickhouse "http://127.0.0.1:$CH_PORT" --verifier "http://127.0.0.1:$V_PORT" >"$WORK/standin.log" 2>&1 &
SVC_PIDS+=($!)
wait_port "$S_PORT" stand-in

# The gateway in multi-cluster broker mode: cluster `otel` lives behind the stand-in.
# Run once per token_mode: sealed (the default) and passthrough.
run_mode() {
  local mode="$1" port
  port=$(free_port)
  cat >"$WORK/gateway-$mode.yaml" <<YAML
server:
  address: 127.0.0.1
  port: $port
  oauth:
    enabled: true
    broker: true
    token_mode: $mode
    issuer: "$ISSUER"
    audience: "$AUDIENCE"
    public_auth_server_url: "http://127.0.0.1:$port"
    client_id: "$IDP_CLIENT"
    client_secret: "$IDP_SECRET"
    signing_secret: "$("$PY" -c 'import secrets; print(secrets.token_urlsafe(48))')"
    upstream_offline_access: true
clickhouse:
  host: 127.0.0.1
multicluster:
  enabled: true
  cluster_allowlist: [otel]
  clusters: {otel: {port: $S_PORT}}
YAML
  "$GATEWAY_BIN" serve --config "$WORK/gateway-$mode.yaml" >"$WORK/gateway-$mode.log" 2>&1 &
  SVC_PIDS+=($!)
  wait_port "$port" "gateway ($mode)"
  echo "[broker-e2e] token_mode: $mode"
  "$PY" e2e/broker/flow.py "http://127.0.0.1:$port/mcp/otel" "http://127.0.0.1:$S_PORT/__standin/stats" "$mode"
}
run_mode sealed
run_mode passthrough
