#!/usr/bin/env bash
# `make soak`: load and a fault, a few minutes, loopback only, bounded. Many concurrent
# MCP clients (bench/soak_load.py) on the gateway while its ClickHouse is stopped and
# started again mid-run. Reports requests served, errors by kind (tool error, JSON-RPC
# error, HTTP status, dropped connection), whether the gateway crashed, and its RSS
# before, at peak and after; writes bench/results/soak.md.
#
# Fails when the gateway crashed, any connection was dropped, any answer was neither a
# result, a tool error nor an HTTP status (a JSON-RPC error counts as a failure too), a
# (valid) query failed while ClickHouse was up, or no request succeeded after ClickHouse
# came back.
#
# Environment: SOAK_SECONDS (total, default 180), SOAK_CLIENTS (default 64), SOAK_IDS
# (unique | per-client, see soak_load.py), GATEWAY=path, KEEP_WORK=1; SOAK_MULTICLUSTER=1
# with SOAK_CLUSTERS (2..6, default 3) and SOAK_USERS (default 8), see below.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
TOTAL=${SOAK_SECONDS:-180}
CLIENTS=${SOAK_CLIENTS:-64}
DOWN_AT=$((TOTAL / 3))          # ClickHouse stops here ...
UP_AT=$((TOTAL / 3 + TOTAL / 6)) # ... and starts again here
OUT="$ROOT/bench/results/soak.md"

# Multi-cluster variant (SOAK_MULTICLUSTER=1): SOAK_CLUSTERS (default 3) ClickHouse 18.16
# servers behind /mcp/a, /mcp/b, ... of one gateway in multi-cluster mode (OAuth resource
# server); clients spread over the routes, each with one of SOAK_USERS (default 8) test JWTs.
# 18.16 has no token users: each JWT is the password of a ClickHouse user named by its
# `preferred_username` (the Basic identity path, as in tests/multicluster.rs). Cluster `a`'s
# server is the one stopped and started; the report has a row per cluster. Results go to
# bench/results/soak-multicluster.md.
MC=${SOAK_MULTICLUSTER:-0}
NCLUSTERS=${SOAK_CLUSTERS:-3}
NUSERS=${SOAK_USERS:-8}
if [ "$MC" = 1 ]; then
  OUT="$ROOT/bench/results/soak-multicluster.md"
  [ "$NCLUSTERS" -ge 2 ] && [ "$NCLUSTERS" -le 6 ] || { echo "soak: SOAK_CLUSTERS must be 2..6" >&2; exit 2; }
  CLUSTERS=(a b c d e f)
  CLUSTERS=("${CLUSTERS[@]:0:$NCLUSTERS}")
fi

WORK=$(mktemp -d /tmp/chmcp-soak.XXXXXX)
SAMPLER_PID=
cleanup() {
  local rc=$?
  set +e # stop everything even if one step fails
  if [ -n "$SAMPLER_PID" ]; then kill "$SAMPLER_PID" 2>/dev/null || true; fi
  svc_cleanup
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ne 0 ] || [ "${FAILED:-0}" = 1 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/deps.sh clickhouse
BIN=$(gw_binary release)
cp "$BIN" "$WORK/chmcp-gateway"
if [ "$MC" = 1 ]; then
  # The test JWTs (signed by the test IdP's key: the gateway validates tokens), and the
  # ClickHouse users whose passwords they are.
  idp_up "$WORK"
  idp_sign soak 1 "$NUSERS" >"$WORK/tokens"
  mapfile -t TOKENS <"$WORK/tokens"
  declare -A CH_DIRS CH_PORTS CH_PIDS
  for c in "${CLUSTERS[@]}"; do
    ch_write_config "$WORK/ch-$c"
    for i in "${!TOKENS[@]}"; do ch_add_user "soak$((i + 1))" "${TOKENS[$i]}"; done
    ch_up
    ch_seed
    ch_query "CREATE TABLE IF NOT EXISTS analytics.whoami (cluster String) ENGINE = TinyLog" >/dev/null
    ch_query "INSERT INTO analytics.whoami VALUES ('$c')" >/dev/null
    ch_query "CREATE VIEW IF NOT EXISTS analytics.by_kind AS SELECT kind, count() AS n FROM analytics.events GROUP BY kind" >/dev/null
    CH_DIRS[$c]=$CH_DIR CH_PORTS[$c]=$CH_PORT CH_PIDS[$c]=$CH_PID
  done
  {
    mc_gateway_yaml $(for c in "${CLUSTERS[@]}"; do echo "$c=${CH_PORTS[$c]}"; done)
    printf 'logging:\n  level: warn\n'
  } >"$WORK/gateway.yaml"
  gw_up "$WORK/chmcp-gateway" "$WORK/gateway.yaml" "$WORK/gateway.log"
  BASE="http://127.0.0.1:$GW_PORT"
  URLS=$(printf "$BASE/mcp/%s," "${CLUSTERS[@]}"); URLS=${URLS%,}
  STOP_URL="$BASE/mcp/${CLUSTERS[0]}"
  export SOAK_TOKENS_FILE="$WORK/tokens"
  # Warm-up: every token on every cluster (identity probes, catalogs), checked by cluster.
  for c in "${CLUSTERS[@]}"; do
    while read -r tok; do
      curl -sf "$BASE/mcp/$c" -H 'Content-Type: application/json' -H "Authorization: Bearer $tok" \
        -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"execute_query","arguments":{"query":"SELECT cluster FROM analytics.whoami"}}}' >"$WORK/warm.json" ||
        { log "warm-up failed on /mcp/$c"; exit 1; }
      grep -q "\"rows\":\[\[\"$c\"\]\]" "$WORK/warm.json" || { log "/mcp/$c did not reach its own server: $(head -c 300 "$WORK/warm.json")"; exit 1; }
      curl -sf -o /dev/null "$BASE/mcp/$c" -H 'Content-Type: application/json' -H "Authorization: Bearer $tok" -d '{"jsonrpc":"2.0","id":2,"method":"tools/list"}'
    done <"$WORK/tokens"
  done
  use_stopped() { CH_DIR=${CH_DIRS[${CLUSTERS[0]}]} CH_PORT=${CH_PORTS[${CLUSTERS[0]}]} CH_PID=${CH_PIDS[${CLUSTERS[0]}]}; }
  use_stopped
  log "clusters ${CLUSTERS[*]} (ClickHouse ports $(for c in "${CLUSTERS[@]}"; do printf '%s ' "${CH_PORTS[$c]}"; done)), gateway at $BASE/mcp/{cluster}; $CLIENTS clients with $NUSERS tokens for ${TOTAL}s, ClickHouse of /mcp/${CLUSTERS[0]} down from ${DOWN_AT}s to ${UP_AT}s"
else
  ch_write_config "$WORK/ch"
  ch_up
  ch_seed
  gw_write_config "$WORK/gateway.yaml"
  gw_up "$WORK/chmcp-gateway" "$WORK/gateway.yaml" "$WORK/gateway.log"
  URLS=$GW_URL STOP_URL=$GW_URL
  log "ClickHouse on 127.0.0.1:$CH_PORT, gateway at $GW_URL; $CLIENTS clients for ${TOTAL}s, ClickHouse down from ${DOWN_AT}s to ${UP_AT}s"
  curl -sf -o /dev/null "$GW_URL" -H 'Content-Type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
fi
sleep 1
RSS_BASE=$(rss_kb "$GW_PID")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
(while :; do echo "$(date +%s) $(rss_kb "$GW_PID" 2>/dev/null || echo 0)" >>"$WORK/rss.samples"; sleep 1; done) &
SAMPLER_PID=$!

EVENTS="$WORK/events"
: >"$EVENTS"
python3 bench/soak_load.py "$URLS" "$CLIENTS" "$TOTAL" "$EVENTS" "$WORK/load.json" >"$WORK/load.log" 2>&1 &
LOAD_PID=$!
SVC_PIDS+=("$LOAD_PID")
START=$(date +%s)
sleep "$DOWN_AT"
echo "$(date +%s.%N) clickhouse_stopping" >>"$EVENTS"
log "stopping ClickHouse (SIGTERM)"
ch_down
echo "$(date +%s.%N) clickhouse_down" >>"$EVENTS"
log "ClickHouse is down"
sleep $((UP_AT - DOWN_AT))
log "starting ClickHouse again"
ch_up
echo "$(date +%s.%N) clickhouse_up" >>"$EVENTS"
LOAD_RC=0
wait "$LOAD_PID" || LOAD_RC=$?
ELAPSED=$(($(date +%s) - START))
RSS_END=$(rss_kb "$GW_PID" 2>/dev/null || echo 0)
sleep 10
RSS_AFTER=$(rss_kb "$GW_PID" 2>/dev/null || echo 0)
kill "$SAMPLER_PID" 2>/dev/null || true; wait "$SAMPLER_PID" 2>/dev/null || true; SAMPLER_PID=
RSS_PEAK=$(awk '{print $2}' "$WORK/rss.samples" | sort -n | tail -n 1)
ALIVE=yes LIVEZ=no
kill -0 "$GW_PID" 2>/dev/null || ALIVE=no
curl -sf -o /dev/null "http://127.0.0.1:$GW_PORT/livez" && LIVEZ=yes
READYZ=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GW_PORT/readyz" || true)
if [ "$LOAD_RC" -ne 0 ] || [ ! -s "$WORK/load.json" ]; then
  cat "$WORK/load.log" >&2; FAILED=1; log "the load script failed"; exit 1
fi

FAILED=0
python3 - "$WORK/load.json" "$OUT" "$RSS_BASE" "$RSS_PEAK" "$RSS_END" "$RSS_AFTER" "$ALIVE" "$LIVEZ" "$READYZ" "$ELAPSED" "$LOAD_BEFORE" "$STOP_URL" "$MC" <<'PY' || FAILED=1
import json, subprocess, sys, time
load = json.load(open(sys.argv[1]))
out = sys.argv[2]
base, peak, end, after = (int(x) / 1024 for x in sys.argv[3:7])
alive, livez, readyz, elapsed, loadavg = sys.argv[7], sys.argv[8], sys.argv[9], sys.argv[10], sys.argv[11]
stop_url, multicluster = sys.argv[12], sys.argv[13] == "1"
t = load["totals"]

def kind(o):
    if o == "ok": return "result"
    if o == "tool_error": return "tool error (isError)"
    if o.startswith("http_"): return "HTTP status " + o[5:]
    if o.startswith("jsonrpc_error_"): return "JSON-RPC error " + o[14:]
    if o.startswith("dropped"): return "dropped connection (" + o[8:] + ")" if o != "dropped_connection" else "dropped connection"
    return o

PHASES = ["before", "clickhouse_stopping", "clickhouse_down", "clickhouse_up"]
ev = {label: at - load["start"] for at, label in load["events"]}
bounds = [0] + [ev.get(p, 0) for p in PHASES[1:]] + [load["seconds"]]
phase_names = {p: f"{n} ({bounds[i]:.0f}–{bounds[i + 1]:.0f} s)" for i, (p, n) in enumerate(zip(PHASES, [
    "before the fault", "ClickHouse shutting down", "ClickHouse down", "after ClickHouse restarted"]))}
outcomes = sorted(t, key=lambda o: (o != "ok", o))
rows = ["| outcome | " + " | ".join(phase_names[p] for p in PHASES) + " | total |",
        "|---" * (len(PHASES) + 2) + "|"]
for o in outcomes:
    cells = [str(load["phases"].get(p, {}).get(o, 0)) for p in PHASES]
    rows.append(f"| {kind(o)} | " + " | ".join(cells) + f" | {t[o]} |")
rows.append("| **all requests** | " + " | ".join(str(sum(load["phases"].get(p, {}).values())) for p in PHASES) + f" | {load['requests']} |")
errors = [f"- {kind(o)}: " + " · ".join(f"`{x}`" for x in texts) for o, texts in sorted(load.get("samples", {}).items())]

dropped = sum(v for o, v in t.items() if o.startswith("dropped"))
jsonrpc = sum(v for o, v in t.items() if o.startswith("jsonrpc_error") or o == "bad_json")
recovered = load["first_ok_after_route"].get(stop_url, {}).get("clickhouse_up")
per_route = load["per_route"]
ok_after = per_route.get(stop_url, {}).get("clickhouse_up", {}).get("ok", 0)
# Tool errors while a route's ClickHouse was up: every valid query should have worked.
healthy_errors = sum(
    n for url, ph in per_route.items() for p, outcomes in ph.items() for o, n in outcomes.items()
    if o == "tool_error" and (url != stop_url or p in ("before", "clickhouse_up")))
verdicts = [
    ("gateway process still running, /livez 200", alive == "yes" and livez == "yes", f"running: {alive}, /livez: {livez}, /readyz: {readyz}"),
    ("no dropped connection", dropped == 0, f"{dropped} dropped"),
    ("every error is a tool error or an HTTP status", jsonrpc == 0, f"{jsonrpc} JSON-RPC errors / unreadable answers"),
    ("no tool error while ClickHouse is up (every query is valid)", healthy_errors == 0,
     f"{healthy_errors} tool errors before the fault and after the restart" + (", or on the clusters never stopped" if multicluster else "")),
    ("requests succeed again after ClickHouse restarts", ok_after > 0, f"first result {recovered} s after the restart" if recovered is not None else "none"),
]
summary = [
    "| figure | value |", "|---|---|",
    f"| duration, clients | {load['seconds']} s, {load['clients']} concurrent clients (keep-alive, no think time) |",
    f"| requests served (results + tool errors) | {t.get('ok', 0) + t.get('tool_error', 0)} of {load['requests']} ({load['requests'] / load['seconds']:.0f} req/s) |",
    f"| latency of results, median / p99 | {load['ok_p50_ms']} ms / {load['ok_p99_ms']} ms |",
    f"| first result after ClickHouse restarted | {recovered} s |",
    f"| gateway crashed | {'no' if alive == 'yes' else 'YES'} (/livez {'200' if livez == 'yes' else 'failed'}, /readyz {readyz}) |",
    f"| gateway RSS: baseline / peak / end of load / 10 s later | {base:.1f} / {peak:.1f} / {end:.1f} / {after:.1f} MB |",
    f"| memory back to baseline (within 25 %) | {'yes' if after <= base * 1.25 else 'no'} ({after - base:+.1f} MB) |",
]
checks = ["| check | result | detail |", "|---|---|---|"] + [f"| {n} | {'pass' if ok else 'FAIL'} | {d} |" for n, ok, d in verdicts]
clusters = ""
if multicluster:
    def cell(url, p):
        o = per_route.get(url, {}).get(p, {})
        errs = sum(v for k, v in o.items() if k != "ok")
        kinds = ", ".join(f"{v} {kind(k)}" for k, v in sorted(o.items()) if k != "ok")
        return f"{o.get('ok', 0)} ok" + (f" / {kinds}" if errs else "")
    crow = ["| cluster | its ClickHouse | " + " | ".join(phase_names[p] for p in PHASES) + " | first result after the restart |",
            "|---" * (len(PHASES) + 3) + "|"]
    for url in load["routes"]:
        name = url.rsplit("/", 1)[-1]
        stopped = url == stop_url
        first = load["first_ok_after_route"].get(url, {}).get("clickhouse_up")
        crow.append(f"| `{name}` | {'stopped and started' if stopped else 'up throughout'} | "
                    + " | ".join(cell(url, p) for p in PHASES) + f" | {first} s |")
    clusters = "\n\nPer cluster (answers by phase; the phases are those of the stopped server):\n\n" + "\n".join(crow)
text = ("\n".join(summary) + "\n\nAnswers by kind and phase:\n\n" + "\n".join(rows) + clusters + "\n\n" + "\n".join(checks)
        + ("\n\nWhat the errors said (up to five distinct texts each):\n\n" + "\n".join(errors) if errors else ""))
version = "?"
try:
    version = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
except OSError:
    pass
with open(out, "w") as f:
    f.write("# chmcp soak (`make soak`)\n\n")
    f.write(f"Run {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}, gateway {version} (release build), ClickHouse 18.16 on loopback; "
            f"ClickHouse sent SIGTERM at {ev.get('clickhouse_stopping', 0):.0f} s, gone at {ev.get('clickhouse_down', 0):.0f} s, "
            f"started again at {ev.get('clickhouse_up', 0):.0f} s. Machine load average before the run: {loadavg} (2 cores). "
            + (f"Multi-cluster mode: {len(load['routes'])} ClickHouse 18.16 servers behind `/mcp/{{cluster}}` (OAuth resource server; each client has one of the test JWTs, the password of a ClickHouse user of the same name: the Basic identity path); only the server of `{stop_url.rsplit('/', 1)[-1]}` was stopped.\n\n"
               if multicluster else "Single-cluster mode (`SOAK_MULTICLUSTER=1` runs the multi-cluster variant).\n\n"))
    f.write(text + "\n")
print(text)
sys.exit(0 if all(ok for _, ok, _ in verdicts) else 1)
PY
echo
echo "written to ${OUT#"$ROOT"/}"
if [ "$FAILED" -ne 0 ]; then echo "soak: FAILED (see the checks above)"; exit 1; fi
echo "soak: passed"
