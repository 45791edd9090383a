#!/usr/bin/env bash
# The fleet rows of `make bench` (issue 25): how complete a caller's first fleet answer is
# and what it costs ClickHouse; the cold storm's full-catalog share within 5 s; 3 replicas
# with and without caller affinity; memory per (caller × cluster) entry with 1,000
# distinct catalogs. Every ClickHouse here is bench/modern_clickhouse_double.py (an HTTP
# double of a modern ClickHouse with a JWT token processor, 5 ms per discovery query;
# see its header): 18.16 refuses Bearer and has no token users.
#
# Usage: bench/fleet.sh [ROWS_TSV]
#   Appends its rows to ROWS_TSV in bench/run.sh's row format (label, value, -, -, kind,
#   target) and prints them as Markdown table rows. GATEWAY=path uses that binary
#   (default: the release build); BEFORE_GATEWAY=path also measures an older binary
#   (e.g. main's) and puts its figures beside, as "before → after".
#   BENCH_FLEET_SIZES (default "10 50 100"), BENCH_STORM_TOKENS (1000),
#   BENCH_REPLICA_CALLERS (1000), BENCH_REPLICA_REQUESTS (5), BENCH_FLEET_PARTS (default
#   "first storm replicas memory": which measurements to run).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh

svc_workdir fleetbench

ROWS=${1:-$WORK/rows.tsv}
MD="$WORK/rows.md"
AFTER=$(gw_binary release)
BEFORE=${BEFORE_GATEWAY:-}
SIZES=${BENCH_FLEET_SIZES:-10 50 100}
STORM=${BENCH_STORM_TOKENS:-1000}
CALLERS=${BENCH_REPLICA_CALLERS:-1000}
REQS=${BENCH_REPLICA_REQUESTS:-5}
DELAY_MS=5
PY=python3
PARTS=" ${BENCH_FLEET_PARTS:-first storm replicas memory} "
part() { [[ "$PARTS" == *" $1 "* ]]; }

row() { # LABEL VALUE TARGET
  printf '%s\t%s\t\t\ttext\t%s\n' "$1" "$2" "${3:-}" >>"$ROWS"
  printf '| %s | %s |  |  |  |  | %s |\n' "$1" "$2" "${3:-}" >>"$MD"
}
# j FILE EXPR: a figure from a JSON file (python expression on `d`).
j() { $PY -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$1" "$2"; }

DOUBLES=() # "port" per running double, in start order
doubles_up() { # N [--distinct]: N fresh doubles (the older ones stopped); ports in DOUBLES
  local n=$1 i; shift
  doubles_down
  for i in $(seq "$n"); do
    double_up "$(mktemp "$WORK/double-XXXXXX.log")" --views 16 --delay-ms "$DELAY_MS" "$@" || exit 1
    DPIDS+=("$DOUBLE_PID"); DOUBLES+=("$DOUBLE_PORT")
  done
}
DPIDS=()
doubles_down() {
  local pid
  for pid in "${DPIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  DPIDS=(); DOUBLES=()
}
GPIDS=()
gateways_down() {
  local pid
  for pid in "${GPIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${GPIDS[@]}"; do for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; done
  GPIDS=()
}
# queries: discovery queries (system tables) the doubles answered, and their peak at once.
queries() { # -> "TOTAL PEAK_ON_ONE_SERVER"
  local p total=0 peak=0 s
  for p in "${DOUBLES[@]}"; do
    s=$(curl -sf "http://127.0.0.1:$p/double/stats")
    total=$((total + $($PY -c 'import json,sys; d=json.loads(sys.argv[1]); print(sum(v for k, v in d.items() if k in ("tables", "columns") or k.startswith("system_columns")))' "$s")))
    peak=$($PY -c 'import json,sys; d=json.loads(sys.argv[1]); print(max(int(sys.argv[2]), d.get("peak_discovery_inflight", 0)))' "$s" "$peak")
  done
  echo "$total $peak"
}
tables_queries() { # discoveries = system.tables queries
  local p total=0
  for p in "${DOUBLES[@]}"; do
    total=$((total + $(curl -sf "http://127.0.0.1:$p/double/stats" | $PY -c 'import json,sys; print(json.load(sys.stdin).get("tables", 0))')))
  done
  echo "$total"
}
# The gateway's multi-cluster YAML with every view tool listed: these rows count the
# clusters whose views reach tools/list, which `auto` replaces by search above 30 tools.
listed_yaml() { mc_gateway_yaml "$@" | sed 's/^  tools:$/  tools_listing: listed\n  tools:/'; }
# fleet_yaml NAMES_PER_DOUBLE...: names n000.. spread round-robin over the doubles.
fleet_yaml() { # COUNT FLEET(yes|no)
  local n=$1 fleet=$2 pairs=() i
  for i in $(seq 0 $((n - 1))); do pairs+=("$(printf 'n%03d' "$i")=${DOUBLES[$((i % ${#DOUBLES[@]}))]}"); done
  listed_yaml "${pairs[@]}"
  [ "$fleet" = yes ] && echo "  fleet_endpoint: true"
  printf '  catalog_cache_max: 100000\n  catalog_ttl_fallback: 2h\nlogging:\n  level: error\n'
}
gateway() { # BIN YAML LOG: starts one more gateway; sets GW_URL, GW_PORT, GW_PID
  gw_up "$1" "$2" "$3"
  GPIDS+=("$GW_PID")
}

# Each measuring function runs in this shell (its services must be stopped by it and by
# the trap) and prints its figures on one line, read back from "$WORK/res".

# --- first-answer completeness, N names on two servers ---------------------------------
first_answer() { # BIN N -> "reached pending silent first_s second_reached per_caller_per_cluster peak"
  local bin=$1 n=$2
  doubles_up 2
  fleet_yaml "$n" yes >"$WORK/fleet-$n.yaml"
  gateway "$bin" "$WORK/fleet-$n.yaml" "$WORK/gw-fleet-$n.log"
  local names=() i
  for i in $(seq 0 $((n - 1))); do names+=("$(printf 'n%03d' "$i")"); done
  $PY "$ROOT/bench/fleet_load.py" first "$GW_URL" "$WORK/first-$n.json" "${names[@]}" >/dev/null
  read -r q peak < <(queries)
  gateways_down
  echo "$(j "$WORK/first-$n.json" 'd["first"]["reached"]') $(j "$WORK/first-$n.json" 'd["first"]["pending"]') $(j "$WORK/first-$n.json" 'd["first"]["silently_missing"]') $(j "$WORK/first-$n.json" 'd["first_s"]') $(j "$WORK/first-$n.json" 'd["second"]["reached"]') $(awk "BEGIN{printf \"%.1f\", $q/$n}") $peak"
}
part first && for n in $SIZES; do
  first_answer "$AFTER" "$n" >"$WORK/res"; read -r r p s t r2 qpc peak <"$WORK/res"
  now="$r of $n clusters' views ($p named pending, $s silently missing) in $t s; 2nd answer: $r2 of $n; $qpc discovery queries per cluster for the caller; peak $peak discovery queries at once on one server"
  if [ -n "$BEFORE" ]; then
    first_answer "$BEFORE" "$n" >"$WORK/res"; read -r br bp bs bt br2 bqpc bpeak <"$WORK/res"
    now="before: $br of $n ($bs silently missing) in $bt s, 2nd $br2, peak $bpeak at once → after: $now"
  fi
  row "¹ fleet, first cold tools/list of one caller: $n cluster names on 2 servers" "$now" "all $n reached or named pending; ≤ 8 at once per server"
done

# --- the storm: STORM cold callers at once on /mcp/a + /mcp/b ---------------------------
storm() { # BIN -> "answered full full5 seconds queries/s peak"
  local bin=$1
  doubles_up 2
  { mc_gateway_yaml "a=${DOUBLES[0]}" "b=${DOUBLES[1]}"; printf '  catalog_cache_max: 100000\nlogging:\n  level: error\n'; } >"$WORK/storm.yaml"
  gateway "$bin" "$WORK/storm.yaml" "$WORK/gw-storm.log"
  local base=${GW_URL%/mcp}
  timeout 300 $PY "$ROOT/bench/mc_load.py" storm "$base/mcp/a,$base/mcp/b" "$STORM" "$WORK/storm.json" >/dev/null
  read -r q peak < <(queries)
  gateways_down
  local secs; secs=$(j "$WORK/storm.json" 'd["seconds"]')
  echo "$(j "$WORK/storm.json" 'd["answered"]') $(j "$WORK/storm.json" 'd["outcomes"].get("full", 0)') $(j "$WORK/storm.json" 'd.get("full_within_5s", 0)') $secs $(awk "BEGIN{printf \"%.0f\", $q/($secs>0?$secs:1)}") $peak $(j "$WORK/storm.json" 'd["max_ms"]')"
}
if part storm; then
storm "$AFTER" >"$WORK/res"; read -r a f f5 secs qps peak maxms <"$WORK/res"
now="answered $a of $STORM; full within 5 s: $f5 ($(awk "BEGIN{printf \"%.1f\", 100*$f5/$STORM}") %), full in all $f; last answer $maxms ms; $qps discovery queries/s, peak $peak at once on one server"
if [ -n "$BEFORE" ]; then
  storm "$BEFORE" >"$WORK/res"; read -r ba bf bf5 bsecs bqps bpeak bmax <"$WORK/res"
  now="before: full within 5 s $bf5 ($(awk "BEGIN{printf \"%.1f\", 100*$bf5/$STORM}") %), peak $bpeak at once → after: $now"
fi
row "¹ cold storm: $STORM distinct callers at once on /mcp/a + /mcp/b" "$now" "every request answered; ≥ 50 % full within 5 s"
fi

# --- 3 replicas × CALLERS callers × REQS listings, fleet of a + b ------------------------
replicas() { # MODE -> "hit_rate discoveries_per_caller_cluster failed"
  local mode=$1 urls=() bases=() k
  doubles_up 2
  { listed_yaml "a=${DOUBLES[0]}" "b=${DOUBLES[1]}"; printf '  fleet_endpoint: true\n  catalog_cache_max: 100000\nlogging:\n  level: error\n'; } >"$WORK/rep.yaml"
  for k in 1 2 3; do
    gateway "$AFTER" "$WORK/rep.yaml" "$WORK/gw-rep-$mode-$k.log"
    urls+=("$GW_URL"); bases+=("${GW_URL%/mcp}")
  done
  $PY "$ROOT/bench/fleet_load.py" replicas "$(IFS=,; echo "${urls[*]}")" "$CALLERS" "$REQS" "$mode" "$WORK/rep-$mode.json" >/dev/null
  local hits=0 misses=0 b h
  for b in "${bases[@]}"; do
    h=$(curl -sf "$b/health")
    hits=$((hits + $($PY -c 'import json,sys; print(json.loads(sys.argv[1])["catalog_cache"]["hits_ok"])' "$h")))
    misses=$((misses + $($PY -c 'import json,sys; print(json.loads(sys.argv[1])["catalog_cache"]["misses"])' "$h")))
  done
  local disc; disc=$(tables_queries)
  gateways_down
  echo "$(awk "BEGIN{printf \"%.1f\", 100*$hits/($hits+$misses)}") $(awk "BEGIN{printf \"%.2f\", $disc/($CALLERS*2)}") $disc $(j "$WORK/rep-$mode.json" 'sum(v for k, v in d["outcomes"].items() if k.startswith("failed"))')"
}
if part replicas; then
replicas spread >"$WORK/res"; read -r sh sd sdt sf <"$WORK/res"
replicas affinity >"$WORK/res"; read -r ah ad adt af <"$WORK/res"
row "¹ 3 replicas × $CALLERS callers × $REQS fleet listings (a + b): cache hit rate / discoveries per (caller × cluster)" "spread (no affinity): $sh % / $sd ($sdt discoveries, $sf failed) → hash on Authorization: $ah % / $ad ($adt, $af failed)" "affinity: 1 discovery per (caller × cluster)"
fi

# --- memory per (caller × cluster) entry, 1,000 distinct catalogs -------------------------
memory() { # BIN -> "per_entry_bytes entries distinct"
  local bin=$1
  doubles_up 1 --distinct
  { mc_gateway_yaml "a=${DOUBLES[0]}"; printf '  catalog_cache_max: 100000\n  catalog_ttl_fallback: 2h\nlogging:\n  level: error\n'; } >"$WORK/mem.yaml"
  gateway "$bin" "$WORK/mem.yaml" "$WORK/gw-mem.log"
  local base=${GW_URL%/mcp} idle full h
  sleep 1; idle=$(rss_kb "$GW_PID")
  $PY "$ROOT/bench/mc_load.py" fill "$base/mcp/a" 1000 8 "$WORK/mem.json" >/dev/null
  sleep 1; full=$(rss_kb "$GW_PID")
  h=$(curl -sf "$base/health")
  gateways_down
  echo "$(( (full - idle) * 1024 / 1000 )) $($PY -c 'import json,sys; c=json.loads(sys.argv[1])["catalog_cache"]; print(c["entries"], c["distinct_catalogs"])' "$h")"
}
if part memory; then
memory "$AFTER" >"$WORK/res"; read -r per entries distinct <"$WORK/res"
now="$per bytes per entry (RSS growth ÷ 1,000; $entries entries, $distinct distinct catalogs, each with a view of its own)"
if [ -n "$BEFORE" ]; then
  memory "$BEFORE" >"$WORK/res"; read -r bper _ _ <"$WORK/res"
  now="before: $bper bytes → after: $now"
fi
row "¹ memory per (caller × cluster) entry, 1,000 distinct catalogs" "$now" ""
fi

doubles_down
cat "$MD"
