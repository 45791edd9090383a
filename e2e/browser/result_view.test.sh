#!/usr/bin/env bash
# The result view (ui://chmcp/result, MCP Apps) in real chromium: a real ClickHouse
# 18.16 and the gateway on free loopback ports, then result_view.mjs reads the view from
# the gateway, runs real queries through the official MCP client and hands both to a
# test host page (the reference AppBridge from @modelcontextprotocol/ext-apps).
# Screenshots land in target/screenshots/result_view/. Run by e2e/browser.sh, or alone:
#   bash e2e/browser/result_view.test.sh   (GATEWAY_BIN, NODE as e2e/browser.sh sets them)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
cd "$ROOT"
source bench/lib.sh

NODE=${NODE:-$(scripts/deps.sh browser | tail -n 1)}
scripts/deps.sh clickhouse
GATEWAY_BIN=${GATEWAY_BIN:-$(gw_binary debug)}

svc_workdir result-view

ch_write_config "$WORK/ch"
ch_up
ch_seed 2000
# A view the gateway turns into a tool (server.tools below), linked to the view too.
ch_query "CREATE VIEW analytics.events_by_user AS SELECT user, round(sum(amount), 2) AS amount FROM analytics.events GROUP BY user ORDER BY amount DESC, user LIMIT 8" >/dev/null
# A row cap the "capped" query passes (2000 rows > 50).
cat > "$WORK/gateway.yaml" <<YAML
clickhouse:
  host: 127.0.0.1
  port: $CH_PORT
  database: analytics
  max_result_rows: 50
server:
  address: 127.0.0.1
  port: 8080
  tools:
    - type: read
      view_regexp: 'analytics\.events_by_user'
logging:
  level: warn
YAML
gw_up "$GATEWAY_BIN" "$WORK/gateway.yaml" "$WORK/gateway.log"
log "ClickHouse $(ch_query 'SELECT version()') on 127.0.0.1:$CH_PORT, gateway at $GW_URL"

"$NODE" e2e/browser/result_view.mjs "$GW_URL"
