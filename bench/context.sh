#!/usr/bin/env bash
# The context bench (issue 23): what the gateway costs a model's context, in bytes and in
# tokens, counted offline with npm gpt-tokenizer's o200k_base (the GPT-4o/GPT-5 vocabulary;
# bench/context/measure.mjs). Rows:
#   - tools/list (the tool definitions a client hands the model) of one cluster whose view
#     rule matches 10, 200 and 1,000 views (real ClickHouse 18.16, generated views);
#   - tools/list of the fleet endpoint /mcp with 1, 5 and 20 clusters × 10 views (every
#     cluster is the same bench/modern_clickhouse_double.py, a double of a modern server:
#     18.16 cannot take the caller's Bearer token that multi-cluster mode forwards);
#   - the text of describe_table for a 50-column table, and of a 500 × 5 execute_query
#     result (what the model reads; structuredContent is counted on its own row).
# Prints a markdown table and puts it between the context markers of
# bench/results/latest.md. CONTEXT_BEFORE=1 records this run as the "before" column
# (bench/results/context-before.tsv); every other run compares with that file.
# Environment: GATEWAY=path (skip the build), BENCH_PROFILE=debug|release (default release).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
OUT="$ROOT/bench/results/latest.md"
BEFORE="$ROOT/bench/results/context-before.tsv"

svc_workdir context

scripts/deps.sh clickhouse >/dev/null
TOK_DIR=$(scripts/deps.sh tokenizer)
NODE_BIN=$(node22_bin)
BIN=$(gw_binary "${BENCH_PROFILE:-release}")

# --- real ClickHouse 18.16: views, a 50-column table -----------------------------------
ch_write_config "$WORK/ch"
ch_up
ch_seed 1000
log "creating 1,210 views and a 50-column table"
for n in 10 200 1000; do
  ch_query "CREATE DATABASE ctx$n" >/dev/null
  for i in $(seq -w 1 "$n"); do
    echo "CREATE VIEW ctx$n.daily_totals_$i AS SELECT kind, count() AS events, sum(amount) AS total FROM analytics.events GROUP BY kind"
  done >"$WORK/views-$n.sql"
  # One statement per request (18.16's HTTP interface runs one), on a few connections.
  xargs -P 4 -d '\n' -I{} curl -sS --fail-with-body "http://127.0.0.1:$CH_PORT/" --data-binary {} <"$WORK/views-$n.sql" >/dev/null
done
COLS=$(python3 - <<'PY'
types = ["UInt64", "String", "DateTime", "Float64", "Date"]
cols = []
for i in range(50):
    t = types[i % 5]
    cols.append(f"c{i:02d}_{t.split('(')[0].lower()} {t} COMMENT 'column {i} of the wide table'")
print(", ".join(cols))
PY
)
ch_query "CREATE TABLE analytics.wide ($COLS) ENGINE = MergeTree() ORDER BY c00_uint64" >/dev/null

gw_single() { # NAME VIEW_DB
  gw_write_config "$WORK/$1.yaml" "tools:" "  - {type: read, view_regexp: '$2\\..*'}"
  gw_up "$BIN" "$WORK/$1.yaml" "$WORK/$1.log"
}
HDRS='{"MCP-Protocol-Version": "2025-06-18"}'
SPEC="$WORK/spec.json"
echo "[" >"$SPEC"
spec() { # LABEL URL PICK BODY [HEADERS-JSON]
  printf '{"label": %s, "url": "%s", "pick": "%s", "body": %s, "headers": %s},\n' \
    "$(python3 -c 'import json,sys; print(json.dumps(sys.argv[1]))' "$1")" "$2" "$3" "$4" "${5:-$HDRS}" >>"$SPEC"
}
LIST='{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
call() { printf '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"%s","arguments":%s}}' "$1" "$2"; }
# Every gateway stays up until the measurement: one node run measures them all.
for n in 10 200 1000; do
  gw_single "one-$n" "ctx$n"
  spec "tools/list, one cluster, $n views" "$GW_URL" tools "$LIST"
done
RESULT_SQL="SELECT number AS id, toDateTime('2026-01-01 00:00:00') + number * 60 AS at, concat('user', toString(number % 37)) AS user, ['click', 'view', 'buy'][number % 3 + 1] AS kind, round(number / 7, 2) AS amount FROM system.numbers LIMIT 500"
spec "describe_table, 50 columns (text)" "$GW_URL" text "$(call describe_table '{"database":"analytics","table":"wide"}')"
spec "execute_query, 500 rows × 5 columns (text)" "$GW_URL" text "$(call execute_query "{\"query\":\"$RESULT_SQL\"}")"
spec "execute_query, 500 rows × 5 columns (structuredContent)" "$GW_URL" structured "$(call execute_query "{\"query\":\"$RESULT_SQL\"}")"

# --- the fleet endpoint: N clusters, all the same double with 10 views ------------------
double_up "$WORK/double.log" --views 10
TOKEN=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import mc_load; print(mc_load.token(0, "context"))' "$ROOT/bench")
for n in 1 5 20; do
  pairs=()
  for i in $(seq 1 "$n"); do pairs+=("c$i=$DOUBLE_PORT"); done
  { mc_gateway_yaml "${pairs[@]}"; echo "  fleet_endpoint: true"; echo "logging:"; echo "  level: warn"; } >"$WORK/fleet-$n.yaml"
  gw_up "$BIN" "$WORK/fleet-$n.yaml" "$WORK/fleet-$n.log"
  spec "tools/list, fleet /mcp, $n cluster(s) × 10 views" "$GW_URL" tools "$LIST" \
    "{\"MCP-Protocol-Version\": \"2025-06-18\", \"Authorization\": \"Bearer $TOKEN\"}"
done
sed -i '$ s/,$//' "$SPEC"
echo "]" >>"$SPEC"

"$NODE_BIN/node" bench/context/measure.mjs "$TOK_DIR" "$SPEC" >"$WORK/now.tsv"

if [ "${CONTEXT_BEFORE:-0}" = 1 ]; then
  cp "$WORK/now.tsv" "$BEFORE"
  log "recorded as the before column in $BEFORE"
fi

# --- the table -------------------------------------------------------------------------
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo "?")
python3 - "$WORK/now.tsv" "$BEFORE" "$OUT" "$COMMIT" <<'PY'
import os, sys, datetime
now_file, before_file, out, commit = sys.argv[1:5]
def load(p):
    rows = {}
    if os.path.exists(p):
        for line in open(p, encoding="utf-8"):
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3:
                rows[parts[0]] = (parts[1], parts[2])
    return rows
now, before = load(now_file), load(before_file)
targets = {
    "tools/list, fleet /mcp, 20 cluster(s) × 10 views": "≤ 4,000 tokens",
    "execute_query, 500 rows × 5 columns (text)": "≥ 40% fewer tokens than before",
}
def n(x):
    return f"{int(x):,}" if x else "failed"
lines = [
    "<!-- context:begin (bench/context.sh) -->",
    "## Context cost (bench/context.sh)",
    "",
    f"Run {datetime.datetime.utcnow():%Y-%m-%dT%H:%MZ}, gateway {commit}. Tokens: npm gpt-tokenizer o200k_base (GPT-4o/GPT-5 vocabulary), offline; "
    "other vocabularies (Claude's) differ by some percent, the ratios much less. tools/list rows count the JSON of the tool definitions "
    "a client hands the model; tool rows count the text blocks of the result (what a model reads), structuredContent on its own row. "
    "One-cluster rows: real ClickHouse 18.16 with generated views; fleet rows: every cluster is the same "
    "bench/modern_clickhouse_double.py (10 views), since 18.16 cannot take the Bearer token multi-cluster mode forwards. "
    "Before: bench/results/context-before.tsv, recorded before issue 23's changes.",
    "",
    "| measure | bytes before | tokens before | bytes now | tokens now | tokens now ÷ before | target |",
    "|---|---|---|---|---|---|---|",
]
for label, (b, t) in now.items():
    bb, bt = before.get(label, ("", ""))
    ratio = f"{int(t) / int(bt):.2f}×" if t and bt else ""
    lines.append(f"| {label} | {n(bb) if bb else ''} | {n(bt) if bt else ''} | {n(b)} | {n(t)} | {ratio} | {targets.get(label, '')} |")
lines.append("<!-- context:end -->")
table = "\n".join(lines) + "\n"
print(table)
text = open(out, encoding="utf-8").read() if os.path.exists(out) else ""
begin, end = text.find("<!-- context:begin"), text.find("<!-- context:end -->")
if begin >= 0 and end >= 0:
    text = text[:begin] + table + text[end + len("<!-- context:end -->\n"):]
else:
    text = text.rstrip("\n") + "\n\n" + table
open(out, "w", encoding="utf-8").write(text)
PY
if grep -q $'\t$' "$WORK/now.tsv"; then log "some measurements failed"; exit 1; fi
