#!/usr/bin/env bash
# `make demo`: a local ClickHouse with sample data and the gateway in front of it.
# Ctrl-C stops both. Override ports with CH_PORT / PORT. Read-only by default (no
# write_query, as mcp-clickhouse serves); DEMO_WRITE=1 adds write_query.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
DEMO="$ROOT/.demo"
CH_PORT="${CH_PORT:-18123}"
PORT="${PORT:-8080}"
GATEWAY="${GATEWAY:-$ROOT/target/debug/chmcp-gateway}"

scripts/deps.sh clickhouse
[ -x "$GATEWAY" ] || cargo build -p chmcp-gateway

source bench/lib.sh
trap svc_cleanup EXIT
trap 'exit 130' INT TERM
rm -rf "$DEMO/ch"
ch_write_config "$DEMO/ch" "$CH_PORT"
ch_up
ch_seed 100000
ch_query "CREATE VIEW analytics.daily_kinds AS SELECT toDate(at) AS day, kind, count() AS events, sum(amount) AS amount FROM analytics.events GROUP BY day, kind ORDER BY day, kind" >/dev/null

READ_ONLY=true
[ "${DEMO_WRITE:-0}" = 1 ] && READ_ONLY=false
cat > "$DEMO/gateway.yaml" <<YAML
clickhouse:
  host: 127.0.0.1
  port: $CH_PORT
  database: analytics
  read_only: $READ_ONLY
server:
  address: 127.0.0.1
  port: $PORT
  tools:
    - {type: read, view_regexp: 'analytics\..*', prefix: 'view_'}
YAML
"$GATEWAY" serve --config "$DEMO/gateway.yaml" &
GW_PID=$!
SVC_PIDS+=("$GW_PID")
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$PORT/livez" >/dev/null 2>&1 && break; sleep 0.1; done

cat <<TXT

  chmcp demo is running.

  MCP endpoint (streamable HTTP):  http://127.0.0.1:$PORT/mcp
  ClickHouse (sample data in analytics.events, view analytics.daily_kinds): http://127.0.0.1:$CH_PORT/

  Writes: $([ "$READ_ONLY" = true ] && echo "off (read-only; DEMO_WRITE=1 adds write_query)" || echo "on (write_query is served)")

  Connect an assistant (README, "Connect an assistant"):
    Claude Code:  claude mcp add --transport http clickhouse http://127.0.0.1:$PORT/mcp
    Codex:        codex mcp add clickhouse --url http://127.0.0.1:$PORT/mcp
    Cursor (~/.cursor/mcp.json):
      {"mcpServers": {"clickhouse": {"url": "http://127.0.0.1:$PORT/mcp"}}}
    VS Code (.vscode/mcp.json):
      {"servers": {"clickhouse": {"type": "http", "url": "http://127.0.0.1:$PORT/mcp"}}}
    Gemini CLI (~/.gemini/settings.json):
      {"mcpServers": {"clickhouse": {"httpUrl": "http://127.0.0.1:$PORT/mcp"}}}
    claude.ai / ChatGPT: Settings → Connectors (ChatGPT: Developer mode) → add the URL;
      they reach only a public HTTPS address, so put the gateway behind one first.

  Over stdio (Claude Desktop, Cursor, Gemini CLI: the same JSON under "mcpServers"):
    {"mcpServers": {"clickhouse": {"command": "$GATEWAY",
      "args": ["serve", "--config", "$DEMO/gateway.yaml", "--transport", "stdio"]}}}

  Press Ctrl-C to stop.
TXT
wait $GW_PID
