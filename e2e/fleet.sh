#!/usr/bin/env bash
# The fleet connector with the official Python SDK: two real ClickHouse 18.16 servers as
# clusters `east` and `west`, a gateway in multi-cluster mode with
# `multicluster.fleet_endpoint: true` validating tokens from the test IdP, and the SDK
# connected once to `/mcp`: it lists both clusters' tools and runs `SELECT 1` (and each
# cluster's view tool, which names the server that answered) by `cluster` argument.
# Then 50 cluster names on one server: the first listing reaches all 50 or names the
# rest pending, the second (within the budget) reaches all.
# Run by `make test` (scripts/test.sh), or alone: `bash e2e/fleet.sh`.
#
# Environment: GATEWAY=path / SKIP_BUILD=1 as in e2e/interop.sh; KEEP_WORK=1 keeps logs.
# Ends with `fleet: N passed, M failed`; exits non-zero when M > 0.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
HERE="$ROOT/e2e/interop"

svc_workdir fleet

scripts/deps.sh clickhouse
NODE_BIN=$(node22_bin)
export PATH="$NODE_BIN:$PATH"
PY=$(venv_for interop-venv "$HERE/requirements.txt")
BIN=$(gw_binary debug)
cp "$BIN" "$WORK/chmcp-gateway"

idp_up "$WORK"
idp_sign fleet 1 1 >"$WORK/token"
TOKEN=$(cat "$WORK/token")

# Two servers; on each, user fleet1 (password: the JWT, the Basic identity path of
# 18.16) and a view that says which server it is.
PAIRS=()
for name in east west; do
  ch_write_config "$WORK/ch-$name"
  ch_add_user fleet1 "$TOKEN"
  ch_up
  ch_query "CREATE DATABASE IF NOT EXISTS analytics" >/dev/null
  ch_query "CREATE VIEW analytics.whoami AS SELECT '$name' AS cluster" >/dev/null
  PAIRS+=("$name=$CH_PORT")
done

{ mc_gateway_yaml "${PAIRS[@]}"; echo "  fleet_endpoint: true"; echo "logging:"; echo "  level: warn"; } >"$WORK/gateway.yaml"
gw_up "$WORK/chmcp-gateway" "$WORK/gateway.yaml" "$WORK/gateway.log"
log "gateway at $GW_URL (fleet connector) for east and west"

rc=0
"$PY" "$HERE/fleet_client.py" "$GW_URL" "$WORK/token" east west >"$WORK/python.log" 2>&1 || rc=$?
sed 's/^/   /' "$WORK/python.log"

# Fifty cluster names, one server (east) behind all of them: the first listing must
# reach every name's view or name it pending; the second, within the budget, all.
EAST_PORT=${PAIRS[0]#*=}
FIFTY=()
for i in $(seq -w 0 49); do FIFTY+=("f$i=$EAST_PORT"); done
# Every cluster's view tool listed (50 > the 30 at which `auto` offers search instead).
{ mc_gateway_yaml "${FIFTY[@]}" | sed 's/^  tools:$/  tools_listing: listed\n  tools:/'; echo "  fleet_endpoint: true"; echo "logging:"; echo "  level: warn"; } >"$WORK/gateway50.yaml"
gw_up "$WORK/chmcp-gateway" "$WORK/gateway50.yaml" "$WORK/gateway50.log"
log "gateway at $GW_URL (fleet connector) for 50 names on one server"
"$PY" "$HERE/fleet50_client.py" "$GW_URL" "$WORK/token" east "${FIFTY[@]%%=*}" >>"$WORK/python.log" 2>&1 || rc=$((rc + $?))
sed -n '/^first tools\/list/,$p' "$WORK/python.log" | sed 's/^/   /'
if grep -q -- "$TOKEN" "$WORK/gateway.log" "$WORK/gateway50.log"; then
  echo "   FAIL the token reached the gateway log"; rc=$((rc + 1))
fi
passed=$(grep -c '^ok ' "$WORK/python.log" || true)
failed=$(grep -c '^FAIL ' "$WORK/python.log" || true)
[ "$rc" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "fleet: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
