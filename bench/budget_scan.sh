#!/usr/bin/env bash
# The scan-budget rows of `make bench` (bench/run.sh calls this; it runs alone too):
# a full scan of a large MergeTree table (BENCH_SCAN_ROWS rows, default 100M, made with
# numbers()) through execute_query, with no budget and with max_rows_to_read ten times
# smaller. On ClickHouse 18.16: time and rows read until ClickHouse stops it. On the chdb
# double (tests/support/chdb_server.py, ClickHouse 26.x in-process, a DOUBLE): time to
# the refusal on EXPLAIN ESTIMATE, nothing run.
# Usage: budget_scan.sh OUT.json   (GATEWAY=path to skip the build)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
OUT=$1
N=${BENCH_SCAN_ROWS:-100000000}
BUDGET=$((N / 10))
WORK=$(mktemp -d /tmp/chmcp-budget.XXXXXX)
cleanup() { svc_cleanup; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/deps.sh clickhouse chdb >/dev/null
BIN=$(gw_binary release)
SCAN="SELECT count() FROM scan.big WHERE v % 7 = 3"

# call URL SQL: one execute_query; prints seconds, isError and the first text block.
call() {
  python3 - "$1" "$2" <<'PY'
import json, sys, time, urllib.request
body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                   "params": {"name": "execute_query", "arguments": {"query": sys.argv[2]}}}).encode()
req = urllib.request.Request(sys.argv[1], body, {"Content-Type": "application/json", "Accept": "application/json"})
t = time.perf_counter()
r = json.load(urllib.request.urlopen(req, timeout=600))["result"]
print(json.dumps({"seconds": time.perf_counter() - t, "error": bool(r.get("isError")), "text": r["content"][0]["text"][:2000]}))
PY
}

gateway_for() { # PORT BUDGET(0: none) NAME
  local yaml="$WORK/gw-$3.yaml"
  { echo "clickhouse:"; echo "  host: 127.0.0.1"; echo "  port: $1"; echo "  max_execution_time: 600"
    [ "$2" -gt 0 ] && echo "  query_budget: {max_rows_to_read: $2}"
    echo "logging:"; echo "  level: warn"; } >"$yaml"
  gw_up "$BIN" "$yaml" "$WORK/gw-$3.log"
  # Warm: the settings probe and the estimate probe are once per endpoint, not per call.
  call "$GW_URL" "SELECT 1" >/dev/null
}

log "ClickHouse 18.16: $N rows into scan.big"
ch_write_config "$WORK/ch"
ch_up
ch_query "CREATE DATABASE scan" >/dev/null
ch_query "CREATE TABLE scan.big (id UInt64, v UInt64) ENGINE = MergeTree ORDER BY id" >/dev/null
ch_query "INSERT INTO scan.big SELECT number, intHash64(number) FROM numbers($N)" >/dev/null
gateway_for "$CH_PORT" 0 open; call "$GW_URL" "$SCAN" >"$WORK/ch-open.json"
gateway_for "$CH_PORT" "$BUDGET" budget; call "$GW_URL" "$SCAN" >"$WORK/ch-budget.json"
ch_down

log "chdb double: $N rows into events"
printf 'CREATE DATABASE scan;\nCREATE TABLE scan.big (id UInt64, v UInt64) ENGINE = MergeTree ORDER BY id;\nINSERT INTO scan.big SELECT number, intHash64(number) FROM numbers(%s);\n' "$N" >"$WORK/init.sql"
chdb_up "$WORK/chdb" "$WORK/init.sql" 3000
gateway_for "$CHDB_PORT" 0 dopen; call "$GW_URL" "$SCAN" >"$WORK/d-open.json"
ran_scans() { curl -s "http://127.0.0.1:$CHDB_PORT/double/log" | python3 -c 'import json,sys; s=sys.argv[1]; print(sum(1 for e in json.load(sys.stdin) if e["query"] == s and e["ran"]))' "$SCAN"; }
gateway_for "$CHDB_PORT" "$BUDGET" dbudget
BEFORE=$(ran_scans)
call "$GW_URL" "$SCAN" >"$WORK/d-budget.json"
RAN=$(( $(ran_scans) - BEFORE ))

python3 - "$WORK" "$N" "$BUDGET" "$RAN" "$OUT" <<'PY'
import json, re, sys
work, n, budget, ran, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
r = {k: json.load(open(f"{work}/{k}.json")) for k in ("ch-open", "ch-budget", "d-open", "d-budget")}
m = re.search(r"after ([0-9.]+[kMGT]?) rows read", r["ch-budget"]["text"])
json.dump({
    "rows": n, "budget": budget,
    "ch_open_s": r["ch-open"]["seconds"], "ch_open_ok": not r["ch-open"]["error"],
    "ch_budget_s": r["ch-budget"]["seconds"], "ch_budget_refused": "scan budget" in r["ch-budget"]["text"],
    "ch_budget_read": m.group(1) if m else "?",
    "d_open_s": r["d-open"]["seconds"], "d_open_ok": not r["d-open"]["error"],
    "d_budget_s": r["d-budget"]["seconds"], "d_budget_refused": "Refused before running" in r["d-budget"]["text"],
    "d_budget_ran": ran,
}, open(out, "w"), indent=1)
PY
cat "$OUT"
