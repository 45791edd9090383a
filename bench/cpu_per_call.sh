#!/usr/bin/env bash
# The gateway's own CPU per call, counted in instructions, which (unlike wall clock or
# /proc CPU time) repeat to a fraction of a percent on a busy machine: a release gateway
# runs under valgrind's callgrind in front of a real ClickHouse 18.16, gets a warm-up, its
# counters are zeroed, then N identical requests arrive one after another on one
# keep-alive connection, and the instructions it ran in between are divided by N.
# Counts user-space instructions only (the kernel's share of loopback TCP is not in them).
#
#   bench/cpu_per_call.sh            execute_query SELECT 1, tools/list, /livez
#   MODE=mc bench/cpu_per_call.sh    bench/hop.sh's tools/list ÷ /livez setup: the
#                                    multi-cluster OAuth resource server (mc_gateway_yaml,
#                                    validate_tokens: false) in front of two modern-ClickHouse
#                                    doubles, a JWT bearer (mc_load.token) on every request,
#                                    warm tools/list on /mcp/a and /livez
#   N=2000 (default) requests per measure; GATEWAY=path skips the release build;
#   KEEP_WORK=1 keeps the callgrind files (callgrind_annotate them for a profile).
# Prints one line per measure: name, requests, instructions per request.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
N=${N:-2000}
WORK=$(mktemp -d /tmp/chmcp-cpu.XXXXXX)
cleanup() {
  local rc=$?
  set +e
  svc_cleanup
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ne 0 ]; then echo "files kept in $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

scripts/deps.sh clickhouse
command -v valgrind >/dev/null || { log "installing valgrind (apt)"; apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >/dev/null; }
BIN=$(gw_binary release)
cp "$BIN" "$WORK/chmcp-gateway"
# gw_up starts a binary with the gateway's arguments: this one is valgrind in front of it.
cat >"$WORK/under-callgrind" <<SH
#!/bin/sh
exec valgrind --tool=callgrind --callgrind-out-file=$WORK/callgrind.out.%p --dump-instr=no "$WORK/chmcp-gateway" "\$@"
SH
chmod +x "$WORK/under-callgrind"

MODE=${MODE:-single}
AUTH=""
if [ "$MODE" = mc ]; then
  # The same gateway and token as bench/hop.sh's warm tools/list row.
  double_up "$WORK/double-a.log" --views 16; DOUBLE_A=$DOUBLE_PORT
  double_up "$WORK/double-b.log" --views 16; DOUBLE_B=$DOUBLE_PORT
  {
    mc_gateway_yaml "a=$DOUBLE_A" "b=$DOUBLE_B"
    printf 'logging:\n  level: error\n'
  } >"$WORK/gateway.yaml"
  AUTH="Bearer $(python3 -c 'import sys; sys.path.insert(0, sys.argv[1]); import mc_load; print(mc_load.token(0, "warm"))' "$ROOT/bench")"
else
  ch_write_config "$WORK/ch"
  ch_up
  ch_seed 100
  gw_write_config "$WORK/gateway.yaml"
fi
gw_up "$WORK/under-callgrind" "$WORK/gateway.yaml" "$WORK/gateway.log"
DUMPS=0

# measure NAME METHOD PATH BODY EXPECT: N requests, then instructions per request.
measure() {
  local name=$1 method=$2 path=$3 body=$4 expect=$5 dump total
  # Warm-up (catalog, pooled ClickHouse connection, lazily built state), not counted.
  python3 "$ROOT/bench/cpu_drive.py" "$GW_PORT" 50 "$method" "$path" "$body" "$expect" "$AUTH"
  callgrind_control -z "$GW_PID" >/dev/null
  python3 "$ROOT/bench/cpu_drive.py" "$GW_PORT" "$N" "$method" "$path" "$body" "$expect" "$AUTH"
  # Dump k holds exactly the counted requests (plus the gateway's idle timers).
  DUMPS=$((DUMPS + 1))
  dump="$WORK/callgrind.out.$GW_PID.$DUMPS"
  callgrind_control -d "$GW_PID" >/dev/null
  for _ in $(seq 100); do grep -qs '^totals:' "$dump" && break; sleep 0.1; done
  grep -qs '^totals:' "$dump" || { log "callgrind wrote no $dump"; return 1; }
  total=$(awk '/^(summary|totals):/ {print $2; exit}' "$dump")
  awk -v name="$name" -v n="$N" -v t="$total" 'BEGIN {printf "%-24s %6d requests %10.0f instructions/request\n", name, n, t / n}'
}
if [ "$MODE" = mc ]; then
  measure "mc tools/list /mcp/a" POST /mcp/a '{"jsonrpc":"2.0","id":7,"method":"tools/list"}' '"v_'
  measure "mc /livez" GET /livez - ok
else
  measure "execute_query SELECT 1" POST /mcp \
    '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"execute_query","arguments":{"query":"SELECT 1"}}}' '"rows":[[1]]'
  measure "tools/list" POST /mcp '{"jsonrpc":"2.0","id":7,"method":"tools/list"}' '"execute_query"'
  measure "/livez" GET /livez - ok
fi
