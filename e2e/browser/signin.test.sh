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
source bench/lib.sh
svc_workdir browser-signin
idp_up "$WORK"

GW_PORT=$(free_port)
CLIENT_PORT=$(free_port)
INSPECTOR_PORT=$(free_port)
SECRET="$(head -c 48 /dev/urandom | base64 | tr -d '\n/+=')"
# Multi-cluster broker mode; `otel` never needs its ClickHouse here (tools/list is
# answered by the gateway). The in-browser client's origin (INSPECTOR_PORT, the port an
# MCP Inspector would use) is allowed: its page calls the gateway with fetch().
cat >"$WORK/gateway.yaml" <<YAML
server:
  address: 127.0.0.1
  port: $GW_PORT
  allowed_origins: ["http://127.0.0.1:$INSPECTOR_PORT", "http://localhost:$INSPECTOR_PORT"]
  oauth:
    enabled: true
    broker: true
    display_name: "Acme Analytics (browser test)"
    issuer: "$IDP_ISSUER"
    audience: "$IDP_AUDIENCE"
    public_auth_server_url: "http://127.0.0.1:$GW_PORT"
    client_id: "$IDP_BROKER_CLIENT"
    client_secret: "$IDP_CLIENT_SECRET"
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
"$GATEWAY_BIN" serve --config "$WORK/gateway.yaml" >"$WORK/gateway.log" 2>&1 &
SVC_PIDS+=($!)
wait_port "$GW_PORT" gateway

GATEWAY_URL="http://127.0.0.1:$GW_PORT" IDP_URL="$IDP_ISSUER" CLIENT_PORT="$CLIENT_PORT" \
  INSPECTOR_PORT="$INSPECTOR_PORT" CLUSTER=otel \
  "$NODE" e2e/browser/signin.mjs
