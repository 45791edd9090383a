#!/usr/bin/env bash
# `make demo`: a local ClickHouse with sample data and the gateway in front of it.
# Ctrl-C stops both. Override ports with CH_PORT / PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO="$ROOT/.demo"
CH_PORT="${CH_PORT:-18123}"
PORT="${PORT:-8080}"
GATEWAY="${GATEWAY:-$ROOT/target/debug/chmcp-gateway}"

scripts/deps.sh clickhouse
[ -x "$GATEWAY" ] || cargo build -p chmcp-gateway

rm -rf "$DEMO/ch" && mkdir -p "$DEMO/ch"
cat > "$DEMO/ch/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$DEMO/ch/server.log</log><errorlog>$DEMO/ch/error.log</errorlog></logger>
  <http_port>$CH_PORT</http_port><tcp_port>$((CH_PORT + 1))</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$DEMO/ch/data/</path><tmp_path>$DEMO/ch/tmp/</tmp_path>
  <users_config>$DEMO/ch/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size><timezone>UTC</timezone>
</yandex>
XML
cat > "$DEMO/ch/users.xml" <<XML
<yandex>
  <profiles><default/></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default/></quotas>
</yandex>
XML
/usr/sbin/clickhouse-server --config-file="$DEMO/ch/config.xml" >/dev/null 2>&1 &
CH_PID=$!
trap 'kill $CH_PID ${GW_PID:-} 2>/dev/null || true' EXIT INT TERM
ch() { curl -sS --fail-with-body "http://127.0.0.1:$CH_PORT/" --data-binary "$1"; }
for _ in $(seq 100); do ch "SELECT 1" >/dev/null 2>&1 && break; sleep 0.1; done
ch "SELECT 1" >/dev/null || { echo "ClickHouse did not start; see $DEMO/ch/error.log" >&2; exit 1; }

ch "CREATE DATABASE IF NOT EXISTS analytics"
ch "CREATE TABLE analytics.events (id UInt64, at DateTime, user String, kind String, amount Float64) ENGINE = MergeTree() ORDER BY (at, id)"
ch "INSERT INTO analytics.events SELECT number, toDateTime('2026-01-01 00:00:00') + number * 37, concat('user', toString(number % 50)), ['click', 'view', 'buy'][number % 3 + 1], round((number % 1000) / 7, 2) FROM system.numbers LIMIT 100000"
ch "CREATE VIEW analytics.daily_kinds AS SELECT toDate(at) AS day, kind, count() AS events, sum(amount) AS amount FROM analytics.events GROUP BY day, kind ORDER BY day, kind"

cat > "$DEMO/gateway.yaml" <<YAML
clickhouse:
  host: 127.0.0.1
  port: $CH_PORT
  database: analytics
server:
  address: 127.0.0.1
  port: $PORT
  tools:
    - {type: read, view_regexp: 'analytics\..*', prefix: 'view_'}
YAML
"$GATEWAY" serve --config "$DEMO/gateway.yaml" &
GW_PID=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null 2>&1 && break; sleep 0.1; done

cat <<TXT

  chmcp demo is running.

  MCP endpoint (streamable HTTP):  http://127.0.0.1:$PORT/mcp
  ClickHouse (sample data in analytics.events, view analytics.daily_kinds): http://127.0.0.1:$CH_PORT/

  Claude Code:
    claude mcp add --transport http clickhouse http://127.0.0.1:$PORT/mcp

  Claude Desktop (claude_desktop_config.json), over stdio:
    {"mcpServers": {"clickhouse": {"command": "$GATEWAY",
      "args": ["serve", "--config", "$DEMO/gateway.yaml", "--transport", "stdio"]}}}

  Press Ctrl-C to stop.
TXT
wait $GW_PID
