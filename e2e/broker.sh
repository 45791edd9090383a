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

PY="$(scripts/deps.sh python)"
scripts/deps.sh clickhouse idp >/dev/null
if [ -z "${GATEWAY_BIN:-}" ]; then
  cargo build -q -p chmcp-gateway
  GATEWAY_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/chmcp-gateway"
fi

. e2e/broker/services.sh
free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# ClickHouse 18.16, its own config on free ports.
CH_HTTP=$(free_port); CH_TCP=$(free_port)
mkdir -p "$TMP/ch"
cat >"$TMP/ch/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$TMP/ch/server.log</log><errorlog>$TMP/ch/error.log</errorlog></logger>
  <http_port>$CH_HTTP</http_port><tcp_port>$CH_TCP</tcp_port><listen_host>127.0.0.1</listen_host>
  <path>$TMP/ch/data/</path><tmp_path>$TMP/ch/tmp/</tmp_path><user_files_path>$TMP/ch/files/</user_files_path>
  <users_config>$TMP/ch/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size><timezone>UTC</timezone>
</yandex>
XML
cat >"$TMP/ch/users.xml" <<XML
<yandex>
  <profiles><default><max_memory_usage>2000000000</max_memory_usage></default></profiles>
  <users><default><password></password><networks><ip>::/0</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default/></quotas>
</yandex>
XML
/usr/sbin/clickhouse-server --config-file="$TMP/ch/config.xml" >"$TMP/clickhouse.log" 2>&1 &
PIDS+=($!)
wait_port "$CH_HTTP" clickhouse

start_idp
READY="$IDP_READY"
field() { "$PY" -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$READY" "$1"; }
ISSUER="$(field issuer)"; AUDIENCE="$(field audience)"
IDP_CLIENT="$(field broker_client_id)"; IDP_SECRET="$(field client_secret)"

# The real verifier, as ClickHouse's HTTP authentication server.
V_PORT=$(free_port)
cat >"$TMP/verify.yaml" <<YAML
listen: 127.0.0.1:$V_PORT
oauth: {issuer: "$ISSUER", audience: "$AUDIENCE"}
identity: {username_claim: email, require_email_verified: true}
YAML
"$GATEWAY_BIN" verify --config "$TMP/verify.yaml" >"$TMP/verify.log" 2>&1 &
PIDS+=($!)
wait_port "$V_PORT" verifier

# The stand-in for a modern ClickHouse's HTTP authentication, in front of 18.16.
S_PORT=$(free_port)
"$PY" e2e/broker/ch_standin.py --port "$S_PORT" --clickhouse "http://127.0.0.1:$CH_HTTP" --verifier "http://127.0.0.1:$V_PORT" >"$TMP/standin.log" 2>&1 &
PIDS+=($!)
wait_port "$S_PORT" stand-in

# The gateway in multi-cluster broker mode: cluster `otel` lives behind the stand-in.
# Run once per token_mode: sealed (the default) and passthrough.
run_mode() {
  local mode="$1" port
  port=$(free_port)
  cat >"$TMP/gateway-$mode.yaml" <<YAML
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
  "$GATEWAY_BIN" serve --config "$TMP/gateway-$mode.yaml" >"$TMP/gateway-$mode.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port" "gateway ($mode)"
  echo "[broker-e2e] token_mode: $mode"
  "$PY" e2e/broker/flow.py "http://127.0.0.1:$port/mcp/otel" "http://127.0.0.1:$S_PORT/__standin/stats" "$mode"
}
run_mode sealed
run_mode passthrough
