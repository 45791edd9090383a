#!/usr/bin/env bash
# `make bench`: the gateway side by side with ClickHouse's own HTTP interface and with the
# peer (PyPI mcp-clickhouse on chDB), measured in one run on this machine, loopback only.
# The floor: the request the gateway sends ClickHouse, through nginx as a plain keep-alive
# reverse proxy, i.e. what one loopback hop costs here, whatever the proxy.
# Prints one markdown table and writes it to bench/results/latest.md. Exits non-zero only
# when a measurement failed (a load run that could not run, or any bad answer), never
# because a figure missed its target: the targets are columns, not assertions.
#
# Environment: BENCH_DURATION (seconds per load run, default 10), GATEWAY=path (skip the
# release build), KEEP_WORK=1 (keep logs). Multi-cluster rows (against the modern-ClickHouse
# double): BENCH_MC_CONNS (warm tools/list and /livez connections, default 16),
# BENCH_STORM_TOKENS (default 1000), BENCH_DOUBLE_DELAY_MS (per discovery query during the
# storm, default 5), BENCH_CATALOGS (cached entries for the RSS figure, default 100000),
# BENCH_FILL_TIMEOUT (seconds, default 900).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
D=${BENCH_DURATION:-10}
OUT="$ROOT/bench/results/latest.md"

WORK=$(mktemp -d /tmp/chmcp-bench.XXXXXX)
SAMPLER_PID=
cleanup() {
  local rc=$?
  set +e # stop everything even if one step fails
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
  svc_cleanup
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ne 0 ] || [ "${FAILURES:-0}" -gt 0 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
FAILURES=0

# --- dependencies and services ---------------------------------------------------------
scripts/deps.sh clickhouse
bench_tools
PEER_PY=$(venv_for peer-venv "$ROOT/bench/requirements-peer.txt")
stack_up release
CH_URL="http://127.0.0.1:$CH_PORT/"

# The peer: stateful streamable HTTP (a session per client), in-process chDB, no auth on loopback.
PEER_PORT=$(free_port)
CHDB_ENABLED=true CLICKHOUSE_ENABLED=false CLICKHOUSE_MCP_SERVER_TRANSPORT=http \
  CLICKHOUSE_MCP_BIND_HOST=127.0.0.1 CLICKHOUSE_MCP_BIND_PORT=$PEER_PORT CLICKHOUSE_MCP_AUTH_DISABLED=true \
  "$(dirname "$PEER_PY")/mcp-clickhouse" >"$WORK/peer.log" 2>&1 &
PEER_PID=$!
SVC_PIDS+=("$PEER_PID")
PEER_URL="http://127.0.0.1:$PEER_PORT/mcp"
MCP_HDRS=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
PEER_SID=
for _ in $(seq 300); do
  PEER_SID=$(curl -s -D - -o /dev/null "$PEER_URL" "${MCP_HDRS[@]}" \
    -d '{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"chmcp-bench","version":"1"}}}' 2>/dev/null |
    awk -F': ' 'tolower($1)=="mcp-session-id" {print $2}' | tr -d '\r') || true
  [ -n "$PEER_SID" ] && break
  sleep 0.2
done
[ -n "$PEER_SID" ] || { log "the peer did not start; see $WORK/peer.log"; tail -n 20 "$WORK/peer.log" >&2; exit 1; }
curl -sf -o /dev/null "$PEER_URL" "${MCP_HDRS[@]}" -H "Mcp-Session-Id: $PEER_SID" -H 'MCP-Protocol-Version: 2025-06-18' \
  -d '{"jsonrpc":"2.0","method":"notifications/initialized"}'

# The floor: nginx forwarding to ClickHouse and nothing else (bench/lib.sh floor_up).
floor_up "$WORK/nginx" "$CH_PORT"
# The same gateway with tracing on: every call sampled and exported (OTLP/HTTP) to the
# sink above; it idles while the others are measured.
gw_write_config "$WORK/gateway-traced.yaml"
cat >>"$WORK/gateway-traced.yaml" <<YAML
telemetry:
  otlp:
    endpoint: http://127.0.0.1:$SINK_PORT
    sample_ratio: 1.0
YAML
PLAIN_GW=("$GW_PORT" "$GW_PID" "$GW_URL")
gw_up "$WORK/chmcp-gateway" "$WORK/gateway-traced.yaml" "$WORK/gateway-traced.log"
TR_PID=$GW_PID TR_URL=$GW_URL
GW_PORT=${PLAIN_GW[0]} GW_PID=${PLAIN_GW[1]} GW_URL=${PLAIN_GW[2]}
log "ClickHouse $CH_URL, gateway $GW_URL, traced gateway $TR_URL, floor (nginx) $FLOOR_URL, peer $PEER_URL"

# --- request bodies --------------------------------------------------------------------
printf 'SELECT 1' >"$WORK/ch.body"
printf '%s' '{"jsonrpc":"2.0","id":__ID__,"method":"tools/call","params":{"name":"execute_query","arguments":{"query":"SELECT 1"}}}' >"$WORK/gw-select.body"
printf '%s' '{"jsonrpc":"2.0","id":__ID__,"method":"tools/list"}' >"$WORK/gw-list.body"
printf '%s' '{"jsonrpc":"2.0","id":__ID__,"method":"tools/call","params":{"name":"run_chdb_select_query","arguments":{"query":"SELECT 1"}}}' >"$WORK/peer-select.body"
GW_HDR=("MCP-Protocol-Version: 2025-11-25")
PEER_HDR=("MCP-Protocol-Version: 2025-06-18" "Mcp-Session-Id: $PEER_SID")

# RSS sampling of the gateway while a load runs: peak VmRSS in kB.
sample_start() { (while :; do rss_kb "$GW_PID" >>"$WORK/rss-$1.samples" 2>/dev/null || true; sleep 0.25; done) & SAMPLER_PID=$!; }
# sample_stop NAME: stops the sampler; the peak goes to $WORK/rss-NAME.peak.
sample_stop() {
  kill "$SAMPLER_PID" 2>/dev/null || true
  wait "$SAMPLER_PID" 2>/dev/null || true
  SAMPLER_PID=
  sort -n "$WORK/rss-$1.samples" | tail -n 1 >"$WORK/rss-$1.peak"
}

# --- measurements ----------------------------------------------------------------------
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
sleep 1
RSS_IDLE=$(rss_kb "$GW_PID")  # after start-up and /readyz, before any MCP request
# Warm-up, not measured: the gateway's catalog and ClickHouse connection, the peer's chDB
# session (its first query loads the engine, which takes seconds).
curl -sf -o /dev/null "$GW_URL" "${MCP_HDRS[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
curl -sf -o /dev/null "$GW_URL" "${MCP_HDRS[@]}" -d "$(sed 's/__ID__/1/' "$WORK/gw-select.body")"
curl -sf -o /dev/null --max-time 120 "$PEER_URL" "${MCP_HDRS[@]}" "${PEER_HDR[@]/#/-H}" -d "$(sed 's/__ID__/1/' "$WORK/peer-select.body")" ||
  { log "the peer did not answer its warm-up query; see $WORK/peer.log"; exit 1; }

# What the gateway itself sends ClickHouse for execute_query (CH_GW_QUERY, CH_GW_HDR in
# bench/lib.sh): the same SELECT 1 costs ClickHouse more in this format with these
# settings, which is part of the gap and not the gateway's.
CH_GW_URL="${CH_URL}?$CH_GW_QUERY"
for c in 1 16; do
  load "ch-select-c$c" "$c" "$CH_URL" "$WORK/ch.body" "1"
  load "chgw-select-c$c" "$c" "$CH_GW_URL" "$WORK/ch.body" '"data"' "${CH_GW_HDR[@]}"
  load_cpu "floor-select-c$c" "$NGX_PID" "$c" "$FLOOR_URL?$CH_GW_QUERY" "$WORK/ch.body" '"data"' "${CH_GW_HDR[@]}"
  sample_start "select-c$c"
  load_cpu "gw-select-c$c" "$GW_PID" "$c" "$GW_URL" "$WORK/gw-select.body" '"rows":[[1]]' "${GW_HDR[@]}"
  sample_stop "select-c$c"
  load_cpu "gwtr-select-c$c" "$TR_PID" "$c" "$TR_URL" "$WORK/gw-select.body" '"rows":[[1]]' "${GW_HDR[@]}"
  load "peer-select-c$c" "$c" "$PEER_URL" "$WORK/peer-select.body" '"isError":false' "${PEER_HDR[@]}"
done
for c in 1 16 128; do
  sample_start "list-c$c"
  load "gw-list-c$c" "$c" "$GW_URL" "$WORK/gw-list.body" '"execute_query"' "${GW_HDR[@]}"
  sample_stop "list-c$c"
done
sleep 2
RSS_AFTER=$(rss_kb "$GW_PID")
RSS_LOAD=$(cat "$WORK"/rss-*.peak | sort -n | tail -n 1)
GW_ALIVE=yes
kill -0 "$GW_PID" 2>/dev/null || { GW_ALIVE=no; FAILURES=$((FAILURES + 1)); }

# --- multi-cluster: /mcp/{cluster} on the modern-ClickHouse double ---------------------
# ClickHouse 18.16 refuses a Bearer header and has no token users, so thousands of distinct
# users cannot reach it; two instances of bench/modern_clickhouse_double.py (an HTTP double
# of a modern ClickHouse with a JWT token processor, not ClickHouse) stand for clusters `a`
# and `b`. Each catalog: the static tools plus one `v_` tool per view of the double.
STORM_TOKENS=${BENCH_STORM_TOKENS:-1000}
CATALOGS=${BENCH_CATALOGS:-100000}
DOUBLE_DELAY_MS=${BENCH_DOUBLE_DELAY_MS:-5}
MC_CONNS=${BENCH_MC_CONNS:-16}
DOUBLE_VIEWS=16 # one dynamic tool each, besides the static tools
double_up "$WORK/double-a.log" --views "$DOUBLE_VIEWS"; DOUBLE_A=$DOUBLE_PORT
double_up "$WORK/double-b.log" --views "$DOUBLE_VIEWS"; DOUBLE_B=$DOUBLE_PORT
{
  mc_gateway_yaml "a=$DOUBLE_A" "b=$DOUBLE_B"
  printf '  catalog_cache_max: %s\n  catalog_ttl_fallback: 2h\nlogging:\n  level: error\n' \
    "$((CATALOGS * 2 > 1000 ? CATALOGS * 2 : 1000))"
} >"$WORK/gateway-mc.yaml"
# figure FILE NAME [LABELS]: one value from a saved /metrics text (0 when absent).
figure() {
  local k=$2
  [ -z "${3:-}" ] || k="$2{$3}"
  awk -v k="$k" '$1 == k {v = $2} END {print v + 0}' "$1"
}
set_delay() { curl -sf -o /dev/null "http://127.0.0.1:$DOUBLE_A/double/config?delay_ms=$1" && curl -sf -o /dev/null "http://127.0.0.1:$DOUBLE_B/double/config?delay_ms=$1"; }

# (b) the cold-cache storm, on a fresh gateway: STORM_TOKENS distinct tokens at once, half
# on /mcp/a and half on /mcp/b (nothing cached, no endpoint probed yet).
gw_up "$WORK/chmcp-gateway" "$WORK/gateway-mc.yaml" "$WORK/gateway-mc.log"
MC_PID=$GW_PID MC_BASE="http://127.0.0.1:$GW_PORT"
set_delay "$DOUBLE_DELAY_MS"
STORM_RC=0
timeout 300 python3 "$ROOT/bench/mc_load.py" storm "$MC_BASE/mcp/a,$MC_BASE/mcp/b" "$STORM_TOKENS" "$WORK/storm.json" >"$WORK/storm.log" 2>&1 || STORM_RC=$?
curl -sf "$MC_BASE/metrics" >"$WORK/storm.metrics" || true
# storm KEY...: a figure from the storm's JSON (nested keys; 0 when absent).
storm() {
  python3 -c '
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2:]:
    v = v.get(k, 0) if isinstance(v, dict) else 0
print(v)' "$WORK/storm.json" "$@" 2>/dev/null || echo 0
}
if [ "$STORM_RC" -ne 0 ] || [ "$(storm failed)" != 0 ] || [ "$(storm answered)" != "$STORM_TOKENS" ]; then
  FAILURES=$((FAILURES + 1)); log "cold-cache storm failed (rc $STORM_RC): $(cat "$WORK/storm.log")"
fi
log "storm: $(cat "$WORK/storm.json" 2>/dev/null)"
SAT=$(figure "$WORK/storm.metrics" chmcp_catalog_discoveries_total 'outcome="saturated"')
DISC_OK=$(figure "$WORK/storm.metrics" chmcp_catalog_discoveries_total 'outcome="ok"')
DISC_TRANS=$(figure "$WORK/storm.metrics" chmcp_catalog_discoveries_total 'outcome="transient_error"')
DISC_AUTH=$(figure "$WORK/storm.metrics" chmcp_catalog_discoveries_total 'outcome="auth_error"')
STORM_ENTRIES=$(figure "$WORK/storm.metrics" chmcp_catalog_cache_entries)

# (a) warm tools/list through /mcp/a beside /livez, same gateway, same load generator.
set_delay 0
WARM_TOKEN=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import mc_load; print(mc_load.token(0, "warm"))' "$ROOT/bench")
curl -sf "$MC_BASE/mcp/a" "${MCP_HDRS[@]}" -H "Authorization: Bearer $WARM_TOKEN" -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >"$WORK/warm-list.json" || true
WARM_TOOLS=$(python3 -c 'import json,sys; t=json.load(open(sys.argv[1]))["result"]["tools"]; print(len(t), sum(x["name"].startswith("v_") for x in t))' "$WORK/warm-list.json" 2>/dev/null || echo "0 0")
log "warm catalog: $WARM_TOOLS (tools, of which dynamic)"
V_TOOL=$(python3 -c 'import json,sys; print(next(x["name"] for x in json.load(open(sys.argv[1]))["result"]["tools"] if x["name"].startswith("v_")))' "$WORK/warm-list.json" 2>/dev/null || echo v_)
load "mc-list-c$MC_CONNS" "$MC_CONNS" "$MC_BASE/mcp/a" "$WORK/gw-list.body" "\"$V_TOOL\"" "${GW_HDR[@]}" "Authorization: Bearer $WARM_TOKEN"
load "mc-livez-c$MC_CONNS" "$MC_CONNS" "$MC_BASE/livez" - "ok"
MC_ALIVE=yes
kill -0 "$MC_PID" 2>/dev/null || { MC_ALIVE=no; FAILURES=$((FAILURES + 1)); }
kill "$MC_PID" 2>/dev/null || true
wait "$MC_PID" 2>/dev/null || true

# (c) resident memory with CATALOGS cached entries: a fresh gateway, its idle RSS, then
# CATALOGS distinct tokens (same grants: one shared catalog), half per cluster, at most
# 12 at a time so that no request is served static-only (16 discoveries at once).
gw_up "$WORK/chmcp-gateway" "$WORK/gateway-mc.yaml" "$WORK/gateway-mc-fill.log"
FILL_PID=$GW_PID FILL_BASE="http://127.0.0.1:$GW_PORT"
sleep 1
RSS_MC_IDLE=$(rss_kb "$FILL_PID")
FILL_RC=0
timeout "${BENCH_FILL_TIMEOUT:-900}" python3 "$ROOT/bench/mc_load.py" fill "$FILL_BASE/mcp/a,$FILL_BASE/mcp/b" "$CATALOGS" 12 "$WORK/fill.json" >"$WORK/fill.log" 2>&1 || FILL_RC=$?
sleep 2
RSS_MC_FULL=$(rss_kb "$FILL_PID" 2>/dev/null || echo 0)
curl -sf "$FILL_BASE/health" >"$WORK/fill-health.json" || true
cache() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["catalog_cache"][sys.argv[2]])' "$WORK/fill-health.json" "$1" 2>/dev/null || echo 0; }
FILL_ENTRIES=$(cache entries)
FILL_DISTINCT=$(cache distinct_catalogs)
log "fill: $(cat "$WORK/fill.json" 2>/dev/null); entries $FILL_ENTRIES, distinct catalogs $FILL_DISTINCT"
if [ "$FILL_RC" -ne 0 ] || [ "$FILL_ENTRIES" != "$CATALOGS" ]; then
  FAILURES=$((FAILURES + 1)); log "catalog fill failed (rc $FILL_RC, $FILL_ENTRIES entries): $(tail -n 5 "$WORK/fill.log")"
fi
FILL_SECS=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["seconds"])' "$WORK/fill.json" 2>/dev/null || echo "?")
kill -0 "$FILL_PID" 2>/dev/null || { MC_ALIVE=no; FAILURES=$((FAILURES + 1)); }

# --- scan budgets (bench/budget_scan.sh: 18.16 and the chdb double) ----------------------
BUDGET_RC=0
GATEWAY="$WORK/chmcp-gateway" bash "$ROOT/bench/budget_scan.sh" "$WORK/budget.json" >"$WORK/budget.log" 2>&1 || BUDGET_RC=$?
bj() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[sys.argv[2]]; print(f"{v:.2f}" if isinstance(v, float) else v)' "$WORK/budget.json" "$1" 2>/dev/null || echo "?"; }
if [ "$BUDGET_RC" -ne 0 ] || [ "$(bj ch_budget_refused)" != True ] || [ "$(bj d_budget_refused)" != True ] || [ "$(bj d_budget_ran)" != 0 ]; then
  FAILURES=$((FAILURES + 1)); log "scan budget rows failed (rc $BUDGET_RC): $(tail -n 5 "$WORK/budget.log")"
fi

# --- the table -------------------------------------------------------------------------
# Each row is one line of arguments to python (see render below); a new measurement is
# one more `row` call. Kinds: ratio rows compare gateway with ClickHouse and peer.
ROWS="$WORK/rows.tsv"
: >"$ROWS"
row() { local IFS=$'\t'; echo "$*" >>"$ROWS"; }
for c in 1 16; do
  row "SELECT 1 via execute_query, $c client(s): median ms" "$(run_stat gw-select-c$c p50_ms)" "$(run_stat ch-select-c$c p50_ms)" "$(run_stat peer-select-c$c p50_ms)" lower "gateway ≤ 1.5× ClickHouse"
  row "SELECT 1 via execute_query, $c client(s): p99 ms" "$(run_stat gw-select-c$c p99_ms)" "$(run_stat ch-select-c$c p99_ms)" "$(run_stat peer-select-c$c p99_ms)" lower ""
  row "SELECT 1 via execute_query, $c client(s): req/s" "$(run_stat gw-select-c$c rps)" "$(run_stat ch-select-c$c rps)" "$(run_stat peer-select-c$c rps)" higher "gateway ≥ 60% of ClickHouse, ≥ 10× peer"
done
for c in 1 16; do
  row "² SELECT 1 straight to ClickHouse as the gateway sends it, $c client(s): median ms / req/s" "$(run_stat chgw-select-c$c p50_ms) / $(run_stat chgw-select-c$c rps)" "" "" text ""
  row "² gateway ÷ that, $c client(s): median / req/s" "$(ratios "$(run_stat gw-select-c$c p50_ms)" "$(run_stat chgw-select-c$c p50_ms)" "$(run_stat gw-select-c$c rps)" "$(run_stat chgw-select-c$c rps)")" "" "" text ""
done
# gateway ÷ floor beside gateway ÷ ClickHouse; then CPU per call of the gateway and of nginx.
for c in 1 16; do
  row "floor: ² request through nginx (keep-alive reverse proxy), $c client(s): median ms / req/s" "$(run_stat floor-select-c$c p50_ms) / $(run_stat floor-select-c$c rps)" "" "" text ""
  row "gateway ÷ floor, $c client(s): median / req/s (gateway ÷ ClickHouse: $(ratios "$(run_stat gw-select-c$c p50_ms)" "$(run_stat ch-select-c$c p50_ms)" "$(run_stat gw-select-c$c rps)" "$(run_stat ch-select-c$c rps)"))" \
    "$(ratios "$(run_stat gw-select-c$c p50_ms)" "$(run_stat floor-select-c$c p50_ms)" "$(run_stat gw-select-c$c rps)" "$(run_stat floor-select-c$c rps)")" "" "" text "≤ 1.25× / ≥ 0.80×"
  row "CPU per call, $c client(s) (/proc utime+stime over the run ÷ answers): gateway / floor (nginx)" "$(cpu gw-select-c$c) / $(cpu floor-select-c$c)" "" "" text ""
done
for c in 1 16; do
  row "tracing on (every call sampled, OTLP to a sink) vs off, $c client(s): median ms / req/s / CPU per call" "on $(run_stat gwtr-select-c$c p50_ms) / $(run_stat gwtr-select-c$c rps) / $(cpu gwtr-select-c$c); off $(run_stat gw-select-c$c p50_ms) / $(run_stat gw-select-c$c rps) / $(cpu gw-select-c$c)" "" "" text ""
done
for c in 1 16 128; do
  row "tools/list (warm catalog), $c client(s): req/s" "$(run_stat gw-list-c$c rps)" "" "" higher ""
  row "tools/list (warm catalog), $c client(s): median / p99 ms" "$(run_stat gw-list-c$c p50_ms) / $(run_stat gw-list-c$c p99_ms)" "" "" text ""
done
row "gateway RSS idle (after start-up)" "$(awk "BEGIN{printf \"%.1f MB\", $RSS_IDLE/1024}")" "" "" text "< 20 MB"
row "gateway RSS under load (peak of the runs above)" "$(awk "BEGIN{printf \"%.1f MB\", $RSS_LOAD/1024}")" "" "" text ""
row "gateway RSS after load (2 s later)" "$(awk "BEGIN{printf \"%.1f MB\", $RSS_AFTER/1024}")" "" "" text ""
# Multi-cluster rows (¹: against bench/modern_clickhouse_double.py, see the note above the table).
row "¹ warm tools/list via /mcp/a ($(echo "$WARM_TOOLS" | cut -d' ' -f1) tools), $MC_CONNS clients: req/s" "$(run_stat mc-list-c$MC_CONNS rps)" "" "" higher ""
row "¹ gateway /livez, same run, $MC_CONNS clients: req/s" "$(run_stat mc-livez-c$MC_CONNS rps)" "" "" higher ""
row "¹ warm tools/list ÷ /livez" "$(python3 -c 'import sys; a, b = (float(x or 0) for x in sys.argv[1:3]); print(f"{a / b:.2f}" if b else "failed")' "$(run_stat mc-list-c$MC_CONNS rps)" "$(run_stat mc-livez-c$MC_CONNS rps)")" "" "" text "≥ 0.5"
row "¹ warm tools/list via /mcp/a, $MC_CONNS clients: median / p99 ms" "$(run_stat mc-list-c$MC_CONNS p50_ms) / $(run_stat mc-list-c$MC_CONNS p99_ms)" "" "" text ""
row "¹ cold-cache storm: $STORM_TOKENS distinct tokens at once on /mcp/a + /mcp/b" "answered $(storm answered) of $STORM_TOKENS: $(storm outcomes full) full catalogs, $(storm outcomes static_only) static-only; failed $(storm failed)" "" "" text "every request answered, none failing"
row "¹ cold-cache storm: /metrics chmcp_catalog_discoveries_total" "ok $DISC_OK, saturated $SAT, transient_error $DISC_TRANS, auth_error $DISC_AUTH; entries cached $STORM_ENTRIES" "" "" text ""
row "¹ cold-cache storm: latency median / max ms (all answers)" "$(storm p50_ms) / $(storm max_ms)" "" "" text ""
row "¹ RSS idle, multi-cluster gateway (fresh)" "$(awk "BEGIN{printf \"%.1f MB\", $RSS_MC_IDLE/1024}")" "" "" text ""
row "¹ RSS with $FILL_ENTRIES cached catalog entries ($FILL_DISTINCT distinct catalog(s); filled in $FILL_SECS s)" "$(awk "BEGIN{printf \"%.1f MB\", $RSS_MC_FULL/1024}")" "" "" text ""
row "¹ RSS for $FILL_ENTRIES entries: minus idle / per entry" "$(awk "BEGIN{d=$RSS_MC_FULL-$RSS_MC_IDLE; printf \"%.1f MB / %.0f bytes\", d/1024, ($FILL_ENTRIES>0 ? d*1024/$FILL_ENTRIES : 0)}")" "" "" text "≤ 100 MB in all"
row "³ full scan of $(bj rows) rows, ClickHouse 18.16: no budget / budget of $(bj budget) rows (stopped by ClickHouse)" "$(bj ch_open_s) s / $(bj ch_budget_s) s, $(bj ch_budget_read) rows read or to read when stopped" "" "" text "refused well before the unbudgeted run ends"
row "³ full scan of $(bj rows) rows, chdb double: no budget / budget of $(bj budget) rows (refused on EXPLAIN ESTIMATE)" "$(bj d_open_s) s / $(bj d_budget_s) s; the scan ran $(bj d_budget_ran) times under the budget" "" "" text "refused before running (0 runs)"
# The fleet rows (issue 25): first-answer completeness at 10/50/100 clusters, the storm's
# share within 5 s, 3 replicas with and without caller affinity, memory with distinct
# catalogs. Its own services; the same binary.
GATEWAY="$WORK/chmcp-gateway" bash "$ROOT/bench/fleet.sh" "$ROWS" >"$WORK/fleet.log" 2>&1 \
  || { FAILURES=$((FAILURES + 1)); log "bench/fleet.sh failed: $(tail -n 5 "$WORK/fleet.log")"; }

META=$(cat <<TXT
Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), loopback only.
Gateway $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') release build; ClickHouse $(ch_query 'SELECT version()' | tr -d '\n') (Debian); peer mcp-clickhouse $("$PEER_PY" -c 'import importlib.metadata as m; print(m.version("mcp-clickhouse") + " on chdb " + m.version("chdb"))').
Load: wrk, 1 thread, ${D} s per run, one fixed POST body per run (unique JSON-RPC ids), every answer checked (HTTP 2xx and the expected content); failed runs: $FAILURES.
The peer runs its in-process chDB backend (its driver cannot talk to ClickHouse 18.16): no network hop, which favours the peer.
Machine load average (1/5/15 min) before the runs: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores; anything above ~3 means other work shared the CPU and the ratios are noisy).
Gateway still running at the end: $GW_ALIVE (single-cluster), $MC_ALIVE (multi-cluster).
² Not a target: the same \`SELECT 1\` sent straight to ClickHouse with the query_id, format and settings the gateway adds (a fresh query_id per request, JSONCompact, database, readonly=2, max_execution_time, max_result_rows, result_overflow_mode=break) and its Basic header, in its order, to show how much of the gap is ClickHouse's own extra work and how much is the gateway's hop.
Floor: that ² request through nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///') as a plain reverse proxy (one process, upstream keep-alive pool, no access log): the cost of one loopback hop on this machine, which no gateway avoids. CPU per call: the process's utime+stime from /proc over the run ÷ answered requests (${D} s runs; clock-tick resolution).
³ Scan budget rows (\`bench/budget_scan.sh\`): \`SELECT count() FROM scan.big WHERE v % 7 = 3\` through execute_query on a MergeTree table made with numbers(), each gateway warmed with one \`SELECT 1\` (the settings and estimate probes are once per endpoint). 18.16 checks the rows a query will read from the parts it selected, so it refuses before reading; the double is ClickHouse 26.x in-process (PyPI chdb) behind an HTTP shim, one query at a time, so its times include the shim's connection per query.
¹ Multi-cluster rows: the gateway in multi-cluster mode (OAuth resource server, clusters \`a\` and \`b\`, one view rule) in front of two instances of \`bench/modern_clickhouse_double.py\`, an HTTP **double** of a modern ClickHouse with a JWT token processor (not ClickHouse: ClickHouse 18.16 refuses Bearer and has no token users). The double accepts any Bearer JWT, answers the identity probe and the discovery queries with fixed JSONCompact ($DOUBLE_VIEWS views) from precomputed bytes, with a ${DOUBLE_DELAY_MS} ms delay per discovery query during the storm and none elsewhere. A real modern ClickHouse would validate each JWT (signature, IdP round trips unless cached), plan and run every system-table query (typically a few ms each, more with many databases), and apply each user's grants, so real catalogs differ per user and share less; the storm's full/static-only split depends on that latency. Warm tools/list and /livez send nothing to ClickHouse, so those rows do not depend on the double.
TXT
)
python3 - "$ROWS" "$OUT" "$META" <<'PY'
import sys
rows_file, out, meta = sys.argv[1:4]

def num(s):
    try:
        return float(s)
    except ValueError:
        return None

def fmt(v):
    return "" if v is None else (f"{v:,.0f}" if v >= 100 else f"{v:.2f}")

lines = [
    "| measure | gateway | ClickHouse HTTP | gateway ÷ ClickHouse | peer (mcp-clickhouse, chDB in-process) | gateway vs peer | target |",
    "|---|---|---|---|---|---|---|",
]
for line in open(rows_file):
    name, gw, ch, peer, kind, target = (line.rstrip("\n").split("\t") + [""] * 6)[:6]
    if kind == "text":
        gw = " / ".join(fmt(num(x)) if num(x) is not None else x for x in gw.split(" / "))
        lines.append(f"| {name} | {gw} |  |  |  |  | {target} |")
        continue
    g, c, p = num(gw), num(ch), num(peer)
    if not ch and not peer:  # a gateway-only figure
        lines.append(f"| {name} | {fmt(g) or 'failed'} |  |  |  |  | {target} |")
        continue
    r_ch = f"{g / c:.2f}×" if g is not None and c else "n/a"
    if kind == "lower":   # latency: how many times faster than the peer
        r_peer = f"{p / g:.1f}× faster" if g and p is not None else "n/a"
    else:                 # throughput: how many times the peer's
        r_peer = f"{g / p:.1f}×" if g is not None and p else "n/a"
    lines.append(f"| {name} | {fmt(g) or 'failed'} | {fmt(c) or 'failed'} | {r_ch} | {fmt(p) or 'failed'} | {r_peer} | {target} |")
table = "\n".join(lines)
# The sections other scripts own (`<!-- NAME:begin -->` … `:end`: hop.sh, context.sh) stay.
import os
kept = ""
if os.path.exists(out):
    old = open(out, encoding="utf-8").read()
    at = old.find("<!-- ")
    kept = "\n" + old[at:] if at >= 0 else ""
with open(out, "w", encoding="utf-8") as f:
    f.write("# chmcp bench (`make bench`)\n\n" + meta.replace("\n", "  \n") + "\n\n" + table + "\n" + kept)
print(table)
PY
echo
# The context rows (bench/context.sh: bytes and tokens a model reads) and the hop rows
# (bench/hop.sh: the gateway against the floor, two rounds), each its own section.
GATEWAY="$WORK/chmcp-gateway" bench/context.sh || FAILURES=$((FAILURES + 1))
GATEWAY="$WORK/chmcp-gateway" bench/hop.sh || FAILURES=$((FAILURES + 1))
echo "written to bench/results/latest.md"
[ "$FAILURES" -eq 0 ]
