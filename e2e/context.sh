#!/usr/bin/env bash
# Progressive discovery, prompts and completions with the official Python SDK, on the
# fleet connector in front of two real ClickHouse 18.16 servers (clusters `east` and
# `west`) with `server.tools_listing: searched`. On each: views in `analytics` (the view
# tools), a table `analytics.orders` with column comments (an insert tool; 18.16 has no
# table or view comments, but has column comments), and a view in `hidden` that user
# fleet1 may read on `west` only (18.16's allow_databases). The SDK, in the 2025 era and
# the 2026-07-28 era, checks: tools/list stays small, search finds a view by a column
# name and an insert tool by a word of a column comment, across both clusters, and the
# found tool runs through call_tool; nobody finds what their grants hide; prompts and
# completions answer; `SELEC 1` is a syntax error that does not mention write_query.
# Run by `make test` (scripts/test.sh), or alone: `bash e2e/context.sh`.
#
# Environment: GATEWAY=path / SKIP_BUILD=1 as in e2e/interop.sh; KEEP_WORK=1 keeps logs.
# Ends with `context: N passed, M failed`; exits non-zero when M > 0.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
HERE="$ROOT/e2e/interop"

svc_workdir context-e2e

scripts/deps.sh clickhouse
NODE_BIN=$(node22_bin)
export PATH="$NODE_BIN:$PATH"
PY=$(venv_for interop-venv "$HERE/requirements.txt")
BIN=$(gw_binary debug)
cp "$BIN" "$WORK/chmcp-gateway"

idp_up "$WORK"
idp_sign ctx 1 1 >"$WORK/token"
TOKEN=$(cat "$WORK/token")

PAIRS=()
for name in east west; do
  ch_write_config "$WORK/ch-$name"
  dbs="<database>analytics</database>"
  [ "$name" = west ] && dbs="$dbs<database>hidden</database>"
  ch_add_user ctx1 "$TOKEN" "$dbs"
  ch_up
  ch_query "CREATE DATABASE analytics" >/dev/null
  ch_query "CREATE DATABASE hidden" >/dev/null
  ch_query "CREATE TABLE analytics.orders (order_id UInt64 COMMENT 'the order number', revenue_eur Float64 COMMENT 'gross turnover in euros', placed DateTime) ENGINE = TinyLog" >/dev/null
  ch_query "INSERT INTO analytics.orders VALUES (1, 10.5, '2026-01-01 10:00:00'), (2, 4.5, '2026-01-02 11:00:00')" >/dev/null
  ch_query "CREATE VIEW analytics.daily_sales AS SELECT toDate(placed) AS day, sum(revenue_eur) AS revenue, '$name' AS served_by FROM analytics.orders GROUP BY day ORDER BY day" >/dev/null
  ch_query "CREATE VIEW analytics.whoami AS SELECT '$name' AS cluster" >/dev/null
  ch_query "CREATE VIEW hidden.payroll_totals AS SELECT 1 AS salary_band" >/dev/null
  PAIRS+=("$name=$CH_PORT")
done

{ mc_gateway_yaml "${PAIRS[@]}"; echo "  fleet_endpoint: true"; echo "logging:"; echo "  level: warn"; } |
  python3 -c '
import sys
y = sys.stdin.read()
y = y.replace("  tools:\n", "  tools_listing: searched\n  tools:\n    - {type: write, table_regexp: '"'"'analytics\\.orders'"'"', prefix: '"'"'i_'"'"'}\n", 1)
y = y.replace("analytics\\..*", "(analytics|hidden)\\..*", 1)
print(y, end="")' >"$WORK/gateway.yaml"
gw_up "$WORK/chmcp-gateway" "$WORK/gateway.yaml" "$WORK/gateway.log"
log "gateway at $GW_URL (fleet connector, searched listing) for east and west"

rc=0
for mode in legacy 2026-07-28; do
  echo "== $mode"
  "$PY" "$HERE/context_client.py" "$GW_URL" "$WORK/token" "$mode" >>"$WORK/python.log" 2>&1 || rc=$?
done

# Comments on views exist only on modern servers (18.16 has neither table nor view
# comments): the modern-ClickHouse DOUBLE (tests/support/chdb_server.py, ClickHouse 26
# in-process via chdb, no users or grants) stands for one, behind a single-cluster
# gateway with static credentials. A real modern server would also apply grants.
cat >"$WORK/modern.sql" <<'SQL'
CREATE TABLE default.shipments (id UInt64, carrier String) ENGINE = MergeTree ORDER BY id;
INSERT INTO default.shipments VALUES (1, 'acme'), (2, 'zenith');
CREATE VIEW default.carrier_counts AS SELECT carrier, count() AS n FROM default.shipments GROUP BY carrier ORDER BY carrier COMMENT 'Parcels handed to each courier';
SQL
chdb_up "$WORK/modern" "$WORK/modern.sql"
cat >"$WORK/modern.yaml" <<YAML
clickhouse:
  host: 127.0.0.1
  port: $CHDB_PORT
  database: default
server:
  address: 127.0.0.1
  port: 8080
  tools_listing: searched
  tools:
    - {type: read, view_regexp: 'default\..*', prefix: 'v_'}
logging:
  level: warn
YAML
gw_up "$WORK/chmcp-gateway" "$WORK/modern.yaml" "$WORK/gateway-modern.log"
echo "== modern double" >>"$WORK/python.log"
"$PY" "$HERE/context_client.py" "$GW_URL" - modern-double >>"$WORK/python.log" 2>&1 || rc=$?
sed 's/^/   /' "$WORK/python.log"
passed=$(grep -c '^ok ' "$WORK/python.log" || true)
failed=$(grep -c '^FAIL ' "$WORK/python.log" || true)
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "context: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
