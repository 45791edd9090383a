#!/usr/bin/env bash
# `make bench`: the gateway side by side with ClickHouse's own HTTP interface and with the
# peer (PyPI mcp-clickhouse on chDB), measured in one run on this machine, loopback only.
# Prints one markdown table and writes it to bench/results/latest.md. Exits non-zero only
# when a measurement failed (a load run that could not run, or any bad answer), never
# because a figure missed its target: the targets are columns, not assertions.
#
# Environment: BENCH_DURATION (seconds per load run, default 10), GATEWAY=path (skip the
# release build), KEEP_WORK=1 (keep logs).
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
command -v wrk >/dev/null || { log "installing wrk (apt)"; apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
PEER_PY=$(venv_for peer-venv "$ROOT/bench/requirements-peer.txt")
BIN=$(gw_binary release)
cp "$BIN" "$WORK/chmcp-gateway"

ch_write_config "$WORK/ch"
ch_up
ch_seed
gw_write_config "$WORK/gateway.yaml"
gw_up "$WORK/chmcp-gateway" "$WORK/gateway.yaml" "$WORK/gateway.log"
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
log "ClickHouse $CH_URL, gateway $GW_URL, peer $PEER_URL"

# --- request bodies --------------------------------------------------------------------
printf 'SELECT 1' >"$WORK/ch.body"
printf '%s' '{"jsonrpc":"2.0","id":__ID__,"method":"tools/call","params":{"name":"execute_query","arguments":{"query":"SELECT 1"}}}' >"$WORK/gw-select.body"
printf '%s' '{"jsonrpc":"2.0","id":__ID__,"method":"tools/list"}' >"$WORK/gw-list.body"
printf '%s' '{"jsonrpc":"2.0","id":__ID__,"method":"tools/call","params":{"name":"run_chdb_select_query","arguments":{"query":"SELECT 1"}}}' >"$WORK/peer-select.body"
GW_HDR=("MCP-Protocol-Version: 2025-11-25")
PEER_HDR=("MCP-Protocol-Version: 2025-06-18" "Mcp-Session-Id: $PEER_SID")

# load NAME CONNECTIONS URL BODY EXPECT [HEADER...]: one bounded wrk run; its JSON line
# goes to $WORK/NAME.json. A run that fails or gets any bad answer counts as a failure.
load() {
  local name=$1 conns=$2 url=$3 body=$4 expect=$5
  shift 5
  local rc=0
  wrk -t1 -c"$conns" -d"${D}s" --timeout 10s -s "$ROOT/bench/post.lua" "$url" -- "$body" "$expect" "$@" \
    >"$WORK/$name.out" 2>&1 || rc=$?
  tail -n 1 "$WORK/$name.out" >"$WORK/$name.json"
  if [ "$rc" -ne 0 ] || ! python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))
sys.exit(0 if r["requests"] > 0 and r["bad"] == 0 and r["socket_errors"] == 0 else 1)' "$WORK/$name.json" 2>/dev/null; then
    FAILURES=$((FAILURES + 1))
    log "load run $name failed: $(cat "$WORK/$name.json")"
  fi
  log "$name: $(cat "$WORK/$name.json")"
}
# stat NAME FIELD: a figure from a load run ("" when the run failed)
stat() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/$1.json" "$2" 2>/dev/null || true; }

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

for c in 1 16; do
  load "ch-select-c$c" "$c" "$CH_URL" "$WORK/ch.body" "1"
  sample_start "select-c$c"
  load "gw-select-c$c" "$c" "$GW_URL" "$WORK/gw-select.body" '"rows":[[1]]' "${GW_HDR[@]}"
  sample_stop "select-c$c"
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

# --- the table -------------------------------------------------------------------------
# Each row is one line of arguments to python (see render below); a new measurement is
# one more `row` call. Kinds: ratio rows compare gateway with ClickHouse and peer.
ROWS="$WORK/rows.tsv"
: >"$ROWS"
row() { local IFS=$'\t'; echo "$*" >>"$ROWS"; }
for c in 1 16; do
  row "SELECT 1 via execute_query, $c client(s): median ms" "$(stat gw-select-c$c p50_ms)" "$(stat ch-select-c$c p50_ms)" "$(stat peer-select-c$c p50_ms)" lower "gateway ≤ 1.5× ClickHouse"
  row "SELECT 1 via execute_query, $c client(s): p99 ms" "$(stat gw-select-c$c p99_ms)" "$(stat ch-select-c$c p99_ms)" "$(stat peer-select-c$c p99_ms)" lower ""
  row "SELECT 1 via execute_query, $c client(s): req/s" "$(stat gw-select-c$c rps)" "$(stat ch-select-c$c rps)" "$(stat peer-select-c$c rps)" higher "gateway ≥ 60% of ClickHouse, ≥ 10× peer"
done
for c in 1 16 128; do
  row "tools/list (warm catalog), $c client(s): req/s" "$(stat gw-list-c$c rps)" "" "" higher ""
  row "tools/list (warm catalog), $c client(s): median / p99 ms" "$(stat gw-list-c$c p50_ms) / $(stat gw-list-c$c p99_ms)" "" "" text ""
done
row "gateway RSS idle (after start-up)" "$(awk "BEGIN{printf \"%.1f MB\", $RSS_IDLE/1024}")" "" "" text "< 20 MB"
row "gateway RSS under load (peak of the runs above)" "$(awk "BEGIN{printf \"%.1f MB\", $RSS_LOAD/1024}")" "" "" text ""
row "gateway RSS after load (2 s later)" "$(awk "BEGIN{printf \"%.1f MB\", $RSS_AFTER/1024}")" "" "" text ""
# Multi-cluster rows: replace `n/a` with a measurement once /mcp/{cluster} exists
# (a storm of 1 000 distinct bearer tokens on two cluster routes; then 100 000 catalogs).
row "cold-cache storm: 1 000 tokens on two clusters" "n/a (needs multi-cluster mode)" "" "" text "every request answered, none failing"
row "RSS with 100 000 cached catalogs" "n/a (needs multi-cluster mode)" "" "" text ""

META=$(cat <<TXT
Run $(date -u +%Y-%m-%dT%H:%MZ) on $(nproc) cores ($(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo)), loopback only.
Gateway $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo '?') release build; ClickHouse $(ch_query 'SELECT version()' | tr -d '\n') (Debian); peer mcp-clickhouse $("$PEER_PY" -c 'import importlib.metadata as m; print(m.version("mcp-clickhouse") + " on chdb " + m.version("chdb"))').
Load: wrk, 1 thread, ${D} s per run, one fixed POST body per run (unique JSON-RPC ids), every answer checked (HTTP 2xx and the expected content); failed runs: $FAILURES.
The peer runs its in-process chDB backend (its driver cannot talk to ClickHouse 18.16): no network hop, which favours the peer.
Machine load average (1/5/15 min) before the runs: $LOAD_BEFORE; after: $(cut -d' ' -f1-3 /proc/loadavg) (2 cores; anything above ~3 means other work shared the CPU and the ratios are noisy).
Gateway still running at the end: $GW_ALIVE.
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
with open(out, "w") as f:
    f.write("# chmcp bench (`make bench`)\n\n" + meta.replace("\n", "  \n") + "\n\n" + table + "\n")
print(table)
PY
echo
echo "written to bench/results/latest.md"
[ "$FAILURES" -eq 0 ]
