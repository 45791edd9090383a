#!/usr/bin/env bash
# The hop (`make bench-hop`, and the last step of `make bench`): what the gateway costs
# over the floor, i.e. over the same ClickHouse request through nginx as a plain
# keep-alive reverse proxy, in ROUNDS rounds of the same runs in one invocation, so a
# reader sees how much the figures move from one round to the next on this machine.
# Per round and per client count (1, 16): the request straight to ClickHouse, the floor,
# the gateway's execute_query (latency, throughput, CPU per call of gateway and nginx);
# then warm tools/list beside /livez on a multi-cluster gateway (16 clients).
# Writes the `hop` section of bench/results/latest.md. Exits non-zero only when a
# measurement failed, never because a figure missed its target.
#
# Environment: BENCH_DURATION (seconds per load run, default 10), BENCH_ROUNDS (default
# 2), GATEWAY=path (skip the release build), KEEP_WORK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
D=${BENCH_DURATION:-10}
ROUNDS=${BENCH_ROUNDS:-2}
OUT="$ROOT/bench/results/latest.md"
FAILURES=0
svc_workdir hop

scripts/deps.sh clickhouse
bench_tools
stack_up release
floor_up "$WORK/nginx" "$CH_PORT"
CH_URL="http://127.0.0.1:$CH_PORT/"

# The multi-cluster gateway for warm tools/list ÷ /livez: clusters `a` and `b` on the
# modern-ClickHouse double (bench/modern_clickhouse_double.py; a warm tools/list sends
# nothing to ClickHouse, so the row does not depend on the double).
double_up "$WORK/double-a.log" --views 16; DOUBLE_A=$DOUBLE_PORT
double_up "$WORK/double-b.log" --views 16; DOUBLE_B=$DOUBLE_PORT
{
  mc_gateway_yaml "a=$DOUBLE_A" "b=$DOUBLE_B"
  printf 'logging:\n  level: error\n'
} >"$WORK/gateway-mc.yaml"
SINGLE=("$GW_PORT" "$GW_PID" "$GW_URL")
# The same gateway on one worker thread (`server.worker_threads: 1`; the default is one
# per CPU): no wake-ups across threads, at the price of one core's work.
gw_write_config "$WORK/gateway-1t.yaml" "worker_threads: 1"
gw_up "$WORK/chmcp-gateway" "$WORK/gateway-1t.yaml" "$WORK/gateway-1t.log"
ONE_PID=$GW_PID ONE_URL=$GW_URL
gw_up "$WORK/chmcp-gateway" "$WORK/gateway-mc.yaml" "$WORK/gateway-mc.log"
MC_BASE="http://127.0.0.1:$GW_PORT"
GW_PORT=${SINGLE[0]} GW_PID=${SINGLE[1]} GW_URL=${SINGLE[2]}

MCP_HDRS=(-H 'Content-Type: application/json' -H 'Accept: application/json, text/event-stream')
GW_HDR=("MCP-Protocol-Version: 2025-11-25")
printf 'SELECT 1' >"$WORK/ch.body"
printf '%s' '{"jsonrpc":"2.0","id":__ID__,"method":"tools/call","params":{"name":"execute_query","arguments":{"query":"SELECT 1"}}}' >"$WORK/gw-select.body"
printf '%s' '{"jsonrpc":"2.0","id":__ID__,"method":"tools/list"}' >"$WORK/gw-list.body"
WARM_TOKEN=$(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import mc_load; print(mc_load.token(0, "warm"))' "$ROOT/bench")
MC_AUTH="Authorization: Bearer $WARM_TOKEN"

# Warm-up, not measured: the catalogs and the pooled ClickHouse connections.
curl -sf -o /dev/null "$GW_URL" "${MCP_HDRS[@]}" -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
curl -sf -o /dev/null "$GW_URL" "${MCP_HDRS[@]}" -d "$(sed 's/__ID__/1/' "$WORK/gw-select.body")"
curl -sf -o /dev/null "$ONE_URL" "${MCP_HDRS[@]}" -d "$(sed 's/__ID__/1/' "$WORK/gw-select.body")"
curl -sf "$MC_BASE/mcp/a" "${MCP_HDRS[@]}" -H "$MC_AUTH" -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' >"$WORK/warm-list.json"
# The same answer from a file: nginx serving the warm tools/list's bytes is the floor
# for an answer of that size (wrk reads and checks every byte of both).
cp "$WORK/warm-list.json" "$WORK/nginx/static/tools-list.json"
LIST_BYTES=$(wc -c <"$WORK/warm-list.json")
V_TOOL=$(python3 -c 'import json,sys; print(next(x["name"] for x in json.load(open(sys.argv[1]))["result"]["tools"] if x["name"].startswith("v_")))' "$WORK/warm-list.json")

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$ROUNDS"); do
  for c in 1 16; do
    load "r$r-chgw-c$c" "$c" "${CH_URL}?$CH_GW_QUERY" "$WORK/ch.body" '"data"' "${CH_GW_HDR[@]}"
    load_cpu "r$r-floor-c$c" "$NGX_PID" "$c" "$FLOOR_URL?$CH_GW_QUERY" "$WORK/ch.body" '"data"' "${CH_GW_HDR[@]}"
    load_cpu "r$r-gw-c$c" "$GW_PID" "$c" "$GW_URL" "$WORK/gw-select.body" '"rows":[[1]]' "${GW_HDR[@]}"
    load_cpu "r$r-one-c$c" "$ONE_PID" "$c" "$ONE_URL" "$WORK/gw-select.body" '"rows":[[1]]' "${GW_HDR[@]}"
  done
  load "r$r-mc-list" 16 "$MC_BASE/mcp/a" "$WORK/gw-list.body" "\"$V_TOOL\"" "${GW_HDR[@]}" "$MC_AUTH"
  load "r$r-mc-livez" 16 "$MC_BASE/livez" - "ok"
  load "r$r-static-list" 16 "${FLOOR_URL}static/tools-list.json" - "\"$V_TOOL\""
done
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)

# --- the section -----------------------------------------------------------------------
# One line per measure, one column per round.
ROWS="$WORK/rows.tsv"
: >"$ROWS"
row() { local IFS=$'\t'; echo "$*" >>"$ROWS"; }
each_round() { # FORMAT-FUNCTION ARGS...: one cell per round
  local cells=() r
  for r in $(seq "$ROUNDS"); do cells+=("$("$1" "$r" "${@:2}")"); done
  printf '%s\n' "${cells[@]}"
}
pair() { printf '%.2f / %.0f\n' "$(run_stat "r$1-$2" p50_ms)" "$(run_stat "r$1-$2" rps)" 2>/dev/null || echo failed; }
over_floor() { ratios "$(run_stat "r$1-$3-c$2" p50_ms)" "$(run_stat "r$1-floor-c$2" p50_ms)" "$(run_stat "r$1-$3-c$2" rps)" "$(run_stat "r$1-floor-c$2" rps)"; }
cpus() { echo "$(cpu "r$1-$3-c$2") / $(cpu "r$1-floor-c$2")"; }
list_livez() {
  printf '%.0f / %.0f = ' "$(run_stat "r$1-mc-list" rps)" "$(run_stat "r$1-mc-livez" rps)" 2>/dev/null || printf 'failed = '
  echo "$(python3 -c 'import sys; a, b = (float(x or 0) for x in sys.argv[1:3]); print(f"{a / b:.2f}" if b else "failed")' "$(run_stat "r$1-mc-list" rps)" "$(run_stat "r$1-mc-livez" rps)")"
}
list_static() {
  printf '%.0f / %.0f = ' "$(run_stat "r$1-mc-list" rps)" "$(run_stat "r$1-static-list" rps)" 2>/dev/null || printf 'failed = '
  echo "$(python3 -c 'import sys; a, b = (float(x or 0) for x in sys.argv[1:3]); print(f"{a / b:.2f}" if b else "failed")' "$(run_stat "r$1-mc-list" rps)" "$(run_stat "r$1-static-list" rps)")"
}
cells() { mapfile -t C < <(each_round "$@"); local IFS=$'\t'; echo "${C[*]}"; }
for c in 1 16; do
  row "request straight to ClickHouse, $c client(s): median ms / req/s" "$(cells pair "chgw-c$c")" ""
  row "floor (nginx), $c client(s): median ms / req/s" "$(cells pair "floor-c$c")" ""
  row "gateway execute_query SELECT 1, $c client(s): median ms / req/s" "$(cells pair "gw-c$c")" ""
  row "**gateway ÷ floor, $c client(s): median / req/s**" "$(cells over_floor "$c" gw)" "≤ 1.25× / ≥ 0.80×"
  row "CPU per call, $c client(s): gateway / nginx" "$(cells cpus "$c" gw)" ""
  row "gateway on one worker thread (server.worker_threads: 1), $c client(s): median ms / req/s" "$(cells pair "one-c$c")" ""
  row "gateway on one worker thread ÷ floor, $c client(s): median / req/s" "$(cells over_floor "$c" one)" "≤ 1.25× / ≥ 0.80×"
  row "CPU per call on one worker thread, $c client(s): gateway / nginx" "$(cells cpus "$c" one)" ""
done
row "**warm tools/list ÷ /livez (multi-cluster, /mcp/a, $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["result"]["tools"]))' "$WORK/warm-list.json") tools, 16 clients): req/s**" "$(cells list_livez)" "≥ 0.5"
row "warm tools/list ÷ nginx serving the same $LIST_BYTES-byte answer from a file (16 clients): req/s" "$(cells list_static)" ""

{
  echo "<!-- hop:begin (bench/hop.sh) -->"
  echo "## The hop: gateway against the floor (bench/hop.sh)"
  echo
  echo "Run $(date -u +%Y-%m-%dT%H:%MZ), gateway $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') release build, on $(nproc) cores, loopback only; $ROUNDS rounds of the same runs in one invocation (wrk, 1 thread, $D s per run, every answer checked; failed runs: $FAILURES). Load average before: $LOAD_BEFORE; after: $LOAD_AFTER. The floor is the request the gateway sends ClickHouse for \`execute_query SELECT 1\` (its query_id, format, settings and Basic header), forwarded by nginx $(/usr/sbin/nginx -v 2>&1 | sed 's/.*nginx\///') as a keep-alive reverse proxy (one process, no access log): the cost of one loopback hop here. CPU per call: utime+stime from /proc over the run ÷ answers. The warm tools/list rows: the multi-cluster gateway (OAuth resource server, a JWT on every request) in front of bench/modern_clickhouse_double.py, one caller's cached catalog; /livez on the same gateway, and nginx serving the same answer's bytes from a file, same load generator (wrk reads and checks every answer, so a large answer costs the load generator too, on the same 2 cores)."
  echo
  header="| measure |" sep="|---|"
  for r in $(seq "$ROUNDS"); do header+=" round $r |"; sep+="---|"; done
  echo "$header target |"
  echo "$sep---|"
  while IFS=$'\t' read -r -a f; do
    line="| ${f[0]} |"
    for r in $(seq "$ROUNDS"); do line+=" ${f[$r]} |"; done
    echo "$line ${f[$((ROUNDS + 1))]:-} |"
  done <"$ROWS"
  echo "<!-- hop:end -->"
} | tee "$WORK/section.md" | md_section "$OUT" hop
cat "$WORK/section.md"
[ "$FAILURES" -eq 0 ]
