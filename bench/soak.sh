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
# (unique | per-client, see soak_load.py), GATEWAY=path, KEEP_WORK=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
TOTAL=${SOAK_SECONDS:-180}
CLIENTS=${SOAK_CLIENTS:-64}
DOWN_AT=$((TOTAL / 3))          # ClickHouse stops here ...
UP_AT=$((TOTAL / 3 + TOTAL / 6)) # ... and starts again here
OUT="$ROOT/bench/results/soak.md"

# Multi-cluster variant: several ClickHouse servers behind /mcp/{cluster}, clients spread
# over the routes, one server stopped and started. TODO(multi-cluster): when the mode lands,
# start one ClickHouse per cluster (ch_write_config/ch_up per directory), write a gateway
# config with `multicluster.enabled: true` and `multicluster.clusters.<name>: {port: ...}`,
# give each client a bearer (see run_multicluster in e2e/interop.sh), and pass the routes as
# the comma-separated URL list to soak_load.py. Until then this switch refuses to run.
if [ "${SOAK_MULTICLUSTER:-0}" = 1 ]; then
  echo "soak: the multi-cluster variant needs the /mcp/{cluster} mode, which is not built yet" >&2
  exit 2
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
ch_write_config "$WORK/ch"
ch_up
ch_seed
gw_write_config "$WORK/gateway.yaml"
gw_up "$WORK/chmcp-gateway" "$WORK/gateway.yaml" "$WORK/gateway.log"
log "ClickHouse on 127.0.0.1:$CH_PORT, gateway at $GW_URL; $CLIENTS clients for ${TOTAL}s, ClickHouse down from ${DOWN_AT}s to ${UP_AT}s"

curl -sf -o /dev/null "$GW_URL" -H 'Content-Type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}'
sleep 1
RSS_BASE=$(rss_kb "$GW_PID")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
(while :; do echo "$(date +%s) $(rss_kb "$GW_PID" 2>/dev/null || echo 0)" >>"$WORK/rss.samples"; sleep 1; done) &
SAMPLER_PID=$!

EVENTS="$WORK/events"
: >"$EVENTS"
python3 bench/soak_load.py "$GW_URL" "$CLIENTS" "$TOTAL" "$EVENTS" "$WORK/load.json" >"$WORK/load.log" 2>&1 &
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
python3 - "$WORK/load.json" "$OUT" "$RSS_BASE" "$RSS_PEAK" "$RSS_END" "$RSS_AFTER" "$ALIVE" "$LIVEZ" "$READYZ" "$ELAPSED" "$LOAD_BEFORE" <<'PY' || FAILED=1
import json, subprocess, sys, time
load = json.load(open(sys.argv[1]))
out = sys.argv[2]
base, peak, end, after = (int(x) / 1024 for x in sys.argv[3:7])
alive, livez, readyz, elapsed, loadavg = sys.argv[7], sys.argv[8], sys.argv[9], sys.argv[10], sys.argv[11]
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
recovered = load["first_ok_after"].get("clickhouse_up")
ok_after = load["phases"].get("clickhouse_up", {}).get("ok", 0)
healthy_errors = load["phases"].get("before", {}).get("tool_error", 0) + load["phases"].get("clickhouse_up", {}).get("tool_error", 0)
verdicts = [
    ("gateway process still running, /livez 200", alive == "yes" and livez == "yes", f"running: {alive}, /livez: {livez}, /readyz: {readyz}"),
    ("no dropped connection", dropped == 0, f"{dropped} dropped"),
    ("every error is a tool error or an HTTP status", jsonrpc == 0, f"{jsonrpc} JSON-RPC errors / unreadable answers"),
    ("no tool error while ClickHouse is up (every query is valid)", healthy_errors == 0, f"{healthy_errors} tool errors before the fault and after the restart"),
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
text = ("\n".join(summary) + "\n\nAnswers by kind and phase:\n\n" + "\n".join(rows) + "\n\n" + "\n".join(checks)
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
            f"started again at {ev.get('clickhouse_up', 0):.0f} s. Machine load average before the run: {loadavg} (2 cores). Single-cluster mode (the multi-cluster variant waits for /mcp/{{cluster}}).\n\n")
    f.write(text + "\n")
print(text)
sys.exit(0 if all(ok for _, ok, _ in verdicts) else 1)
PY
echo
echo "written to bench/results/soak.md"
if [ "$FAILED" -ne 0 ]; then echo "soak: FAILED (see the checks above)"; exit 1; fi
echo "soak: passed"
