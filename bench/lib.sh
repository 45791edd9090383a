# Shared helpers for the scripts in scripts/, bench/ and e2e/: a
# throwaway ClickHouse and gateway on loopback ports, and the pinned client toolchains.
# Source it; it defines functions only. Callers own `set -euo pipefail` and their trap,
# which should call `svc_cleanup`.

DEPS_CACHE_DIR="${DEPS_CACHE_DIR:-$HOME/.cache/chmcp}"
LIB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$LIB_ROOT/target}"
SVC_PIDS=()

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# A TCP port nobody listens on right now (the kernel picks it).
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# wait_port PORT WHAT: until something accepts TCP connections on 127.0.0.1:PORT (15 s).
wait_port() {
  for _ in $(seq 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
    sleep 0.1
  done
  log "nothing listens on port $1 ($2)"
  return 1
}

wait_http() { # URL [tries of 0.1 s]
  local url=$1 tries=${2:-150}
  for _ in $(seq "$tries"); do
    curl -sf -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}

# --- ClickHouse (Debian 18.16) -------------------------------------------------------
# ch_write_config DIR [HTTP_PORT]: a private server config under DIR (CH_PORT, CH_TCP_PORT);
# free ports unless HTTP_PORT is given.
ch_write_config() {
  local dir=$1
  CH_DIR=$dir
  CH_PORT=${2:-$(free_port)}
  CH_TCP_PORT=$(free_port)
  mkdir -p "$dir/data" "$dir/tmp"
  cat > "$dir/config.xml" <<XML
<yandex>
  <logger><level>warning</level><log>$dir/server.log</log><errorlog>$dir/error.log</errorlog></logger>
  <http_port>$CH_PORT</http_port><tcp_port>$CH_TCP_PORT</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <path>$dir/data/</path><tmp_path>$dir/tmp/</tmp_path>
  <users_config>$dir/users.xml</users_config>
  <default_profile>default</default_profile><default_database>default</default_database>
  <mark_cache_size>5368709</mark_cache_size><timezone>UTC</timezone>
  <max_concurrent_queries>500</max_concurrent_queries>
</yandex>
XML
  cat > "$dir/users.xml" <<XML
<yandex>
  <profiles><default/></profiles>
  <users><default><password></password><networks><ip>127.0.0.1</ip></networks><profile>default</profile><quota>default</quota></default></users>
  <quotas><default/></quotas>
</yandex>
XML
}

# ch_add_user NAME PASSWORD [DATABASES_XML]: a loopback user (default profile and quota)
# on the server of ch_write_config, limited to allow_databases when DATABASES_XML is given.
ch_add_user() {
  python3 - "$CH_DIR/users.xml" "$1" "$2" "${3:-}" <<'PY'
import sys
path, name, password, dbs = sys.argv[1:5]
xml = open(path).read()
allow = f"<allow_databases>{dbs}</allow_databases>" if dbs else ""
user = (f"<{name}><password>{password}</password><networks><ip>127.0.0.1</ip></networks><profile>default</profile>"
        f"<quota>default</quota>{allow}</{name}>")
open(path, "w").write(xml.replace("</users>", user + "</users>"))
PY
}

ch_query() { curl -sS --fail-with-body "http://127.0.0.1:$CH_PORT/" --data-binary "$1"; }

# ch_up: start the server configured by ch_write_config (again, after ch_down) and wait.
ch_up() {
  /usr/sbin/clickhouse-server --config-file="$CH_DIR/config.xml" >"$CH_DIR/stdout.log" 2>&1 &
  CH_PID=$!
  SVC_PIDS+=("$CH_PID")
  for _ in $(seq 200); do
    ch_query "SELECT 1" >/dev/null 2>&1 && return 0
    kill -0 "$CH_PID" 2>/dev/null || break
    sleep 0.1
  done
  log "ClickHouse did not start; see $CH_DIR/error.log"
  tail -n 20 "$CH_DIR/error.log" >&2 2>/dev/null || true
  return 1
}

# ch_down: stop the server (SIGTERM, then SIGKILL after 10 s) and wait for it to exit.
ch_down() {
  [ -n "${CH_PID:-}" ] || return 0
  kill "$CH_PID" 2>/dev/null || true
  for _ in $(seq 100); do kill -0 "$CH_PID" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$CH_PID" 2>/dev/null || true
  wait "$CH_PID" 2>/dev/null || true
  CH_PID=
}

# ch_seed [ROWS]: sample data, analytics.events with ROWS rows (default 10 000).
ch_seed() {
  local rows=${1:-10000}
  ch_query "CREATE DATABASE IF NOT EXISTS analytics" >/dev/null
  ch_query "CREATE TABLE IF NOT EXISTS analytics.events (id UInt64, at DateTime, user String, kind String, amount Float64) ENGINE = MergeTree() ORDER BY (at, id)" >/dev/null
  ch_query "INSERT INTO analytics.events SELECT number, toDateTime('2026-01-01 00:00:00') + number * 37, concat('user', toString(number % 50)), ['click', 'view', 'buy'][number % 3 + 1], round((number % 1000) / 7, 2) FROM system.numbers LIMIT $rows" >/dev/null
}

# chdb_up DIR INIT_SQL [TRIES of 0.1 s]: the modern-ClickHouse DOUBLE
# (tests/support/chdb_server.py, PyPI chdb; read its header) on a free port (CHDB_PORT),
# its data and log under DIR, INIT_SQL run before it listens; waits until /ping answers.
chdb_up() {
  local dir=$1 init=$2 tries=${3:-300} py
  py=$("$LIB_ROOT/scripts/deps.sh" chdb)
  CHDB_PORT=$(free_port)
  mkdir -p "$dir"
  "$py" "$LIB_ROOT/tests/support/chdb_server.py" "$CHDB_PORT" --path "$dir/data" --init "$init" >"$dir/double.log" 2>&1 &
  SVC_PIDS+=("$!")
  if ! wait_http "http://127.0.0.1:$CHDB_PORT/ping" "$tries"; then
    log "the chdb double did not start; see $dir/double.log"
    tail -n 20 "$dir/double.log" >&2 || true
    return 1
  fi
}

# double_up LOG [ARGS...]: bench/modern_clickhouse_double.py (an HTTP double of a modern
# ClickHouse; read its header) on a free port (DOUBLE_PORT, DOUBLE_PID) with ARGS, its
# output in LOG; waits until /ping answers.
double_up() {
  local logfile=$1
  shift
  DOUBLE_PORT=$(free_port)
  python3 "$LIB_ROOT/bench/modern_clickhouse_double.py" "$DOUBLE_PORT" "$@" >"$logfile" 2>&1 &
  DOUBLE_PID=$!
  SVC_PIDS+=("$DOUBLE_PID")
  if ! wait_http "http://127.0.0.1:$DOUBLE_PORT/ping" 100; then
    log "the double did not start; see $logfile"
    cat "$logfile" >&2
    return 1
  fi
}

# --- the gateway ---------------------------------------------------------------------
# gw_binary debug|release: path of the binary, built if missing (cargo serializes builds).
gw_binary() {
  local profile=$1 flag=()
  [ "$profile" = release ] && flag=(--release)
  local bin="$CARGO_TARGET_DIR/$profile/chmcp-gateway"
  if [ -n "${GATEWAY:-}" ]; then
    bin=$GATEWAY
  elif [ "${SKIP_BUILD:-0}" != 1 ]; then
    (cd "$LIB_ROOT" && cargo build -q "${flag[@]}" -p chmcp-gateway) >&2
  fi
  [ -x "$bin" ] || { log "no gateway binary at $bin"; return 1; }
  echo "$bin"
}

# gw_write_config FILE [extra YAML lines appended under `server:`]
gw_write_config() {
  local file=$1
  shift
  {
    cat <<YAML
clickhouse:
  host: 127.0.0.1
  port: $CH_PORT
  database: analytics
server:
  address: 127.0.0.1
  port: 8080
YAML
    if [ $# -gt 0 ]; then printf '  %s\n' "$@"; fi
    printf 'logging:\n  level: warn\n'
  } > "$file"
}

# gw_up BIN CONFIG LOG: start the gateway on a free port (GW_PORT, GW_PID, GW_URL) and
# wait until /readyz answers 200.
# shellcheck disable=SC2034 # GW_URL is for the callers
gw_up() {
  local bin=$1 config=$2 logfile=$3
  GW_PORT=$(free_port)
  # The gateway reads every CHMCP_* variable as configuration and rejects unknown keys,
  # so variables of our own (DEPS_CACHE_DIR) must not reach it.
  local unset=() v
  for v in $(compgen -e | grep '^CHMCP_' || true); do unset+=(-u "$v"); done
  env "${unset[@]}" "$bin" serve --config "$config" --set "server.port=$GW_PORT" --set server.address=127.0.0.1 >"$logfile" 2>&1 &
  GW_PID=$!
  SVC_PIDS+=("$GW_PID")
  GW_URL="http://127.0.0.1:$GW_PORT/mcp"
  if ! wait_http "http://127.0.0.1:$GW_PORT/readyz" 200; then
    log "gateway did not become ready; last log lines:"
    tail -n 20 "$logfile" >&2 || true
    return 1
  fi
}

# stack_up debug|release: a private copy of the gateway binary ($WORK/chmcp-gateway: the
# target directory may be shared with other builds), a seeded ClickHouse, and the gateway
# in front of it ($WORK/gateway.yaml; gw_up's GW_PORT, GW_PID, GW_URL).
stack_up() {
  local bin
  bin=$(gw_binary "$1")
  cp "$bin" "$WORK/chmcp-gateway"
  ch_write_config "$WORK/ch"
  ch_up
  ch_seed
  gw_write_config "$WORK/gateway.yaml"
  gw_up "$WORK/chmcp-gateway" "$WORK/gateway.yaml" "$WORK/gateway.log"
}

# rss_kb PID: resident set size in kB from /proc (VmRSS).
rss_kb() { awk '/^VmRSS:/ {print $2}' "/proc/$1/status"; }

# --- load runs (wrk) and the floor (nginx) -------------------------------------------
# Used by bench/run.sh and bench/hop.sh. They need WORK (a work dir), D (seconds per run)
# and FAILURES (a counter the caller reports).

# bench_tools: wrk and nginx, installed once (apt).
bench_tools() {
  "$LIB_ROOT/scripts/deps.sh" nginx
  command -v wrk >/dev/null || { log "installing wrk (apt)"; apt-get update -qq >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; }
}

# load NAME CONNECTIONS URL BODY EXPECT [HEADER...]: one bounded wrk run (bench/post.lua);
# its JSON line goes to $WORK/NAME.json. A run that fails or gets any bad answer counts
# as a failure.
load() {
  local name=$1 conns=$2 url=$3 body=$4 expect=$5
  shift 5
  local rc=0
  wrk -t1 -c"$conns" -d"${D}s" --timeout 10s -s "$LIB_ROOT/bench/post.lua" "$url" -- "$body" "$expect" "$@" \
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
# cpu_ticks PID: the process's user+system CPU so far, in clock ticks (/proc/PID/stat).
# The command name (field 2) may hold spaces, so fields are counted after its `)`.
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }
# load_cpu NAME PID CONNECTIONS URL BODY EXPECT [HEADER...]: `load`, and PID's CPU per
# answered request over the run in µs, into $WORK/NAME.cpu.
load_cpu() {
  local name=$1 pid=$2 before after
  shift 2
  before=$(cpu_ticks "$pid")
  load "$name" "$@"
  after=$(cpu_ticks "$pid")
  python3 -c 'import sys; t, n, hz = float(sys.argv[1]), float(sys.argv[2] or 0), float(sys.argv[3]); print(f"{t * 1e6 / hz / n:.0f} µs" if n else "")' \
    "$((after - before))" "$(run_stat "$name" requests)" "$(getconf CLK_TCK)" >"$WORK/$name.cpu"
}
cpu() { cat "$WORK/$1.cpu" 2>/dev/null || true; }
# run_stat NAME FIELD: a figure from a load run ("" when the run failed)
run_stat() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$WORK/$1.json" "$2" 2>/dev/null || true; }
# ratios G_P50 F_P50 G_RPS F_RPS: "a× / b×", medians then throughputs.
ratios() {
  python3 -c 'import sys; g50, f50, grps, frps = (float(x or 0) for x in sys.argv[1:5]); print(f"{g50 / f50:.2f}× / {grps / frps:.2f}×" if f50 and frps else "failed")' "$@"
}

# floor_up DIR UPSTREAM_PORT: the floor, nginx forwarding to ClickHouse and nothing else
# (NGX_PID, FLOOR_URL; files under DIR/static at FLOOR_URL/static/), plus an OTLP/HTTP
# sink on SINK_PORT. One process (no master, so
# the pid we read CPU from is the one that serves), an upstream keep-alive pool like the
# gateway's, no access log (the gateway writes none per request at level warn either).
floor_up() {
  local dir=$1 upstream=$2 port
  port=$(free_port)
  SINK_PORT=$(free_port)
  mkdir -p "$dir/logs" "$dir/tmp" "$dir/static"
  cat >"$dir/nginx.conf" <<NGX
daemon off;
master_process off;
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $dir/tmp/body;
  proxy_temp_path $dir/tmp/proxy;
  fastcgi_temp_path $dir/tmp/fastcgi;
  uwsgi_temp_path $dir/tmp/uwsgi;
  scgi_temp_path $dir/tmp/scgi;
  keepalive_requests 1000000;
  upstream clickhouse {
    server 127.0.0.1:$upstream;
    keepalive 32;
    keepalive_requests 1000000;
  }
  # An OTLP/HTTP sink for a traced gateway: 200 with an empty body (an empty
  # ExportTraceServiceResponse), so exporting costs the gateway what it costs in real life.
  server {
    listen 127.0.0.1:$SINK_PORT;
    location / { return 200; }
  }
  server {
    listen 127.0.0.1:$port;
    # Files under DIR/static, for a floor that answers with the same bytes as the gateway.
    location /static/ { alias $dir/static/; }
    location / {
      proxy_pass http://clickhouse;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
NGX
  /usr/sbin/nginx -p "$dir" -c "$dir/nginx.conf" -e "$dir/logs/error.log" >"$dir/stdout.log" 2>&1 &
  NGX_PID=$!
  SVC_PIDS+=("$NGX_PID")
  FLOOR_URL="http://127.0.0.1:$port/"
  wait_http "${FLOOR_URL}?query=SELECT%201" 100 || { log "nginx (the floor) did not start"; cat "$dir/logs/error.log" "$dir/stdout.log" >&2; return 1; }
}

# What the gateway sends ClickHouse for `execute_query SELECT 1`, parameters in its order
# (18.16 refuses log_comment, so it is not sent; a query_id unique to each request, as the
# gateway makes one), and its credentials header (user `default`, empty password; checked
# with a capturing proxy). The floor forwards exactly this request.
# shellcheck disable=SC2034 # for the callers
CH_GW_QUERY="query_id=chmcp-__ID__&default_format=JSONCompact&database=analytics&readonly=2&max_execution_time=120&max_result_rows=501&result_overflow_mode=break"
# shellcheck disable=SC2034
CH_GW_HDR=("Authorization: Basic $(printf 'default:' | base64)")

# md_section FILE NAME: replaces the `<!-- NAME:begin ... -->` … `<!-- NAME:end -->` block
# of FILE with stdin (which carries both markers), or appends it.
md_section() {
  python3 -c '
import os, sys
out, name = sys.argv[1:3]
block = sys.stdin.read().rstrip("\n") + "\n"
text = open(out, encoding="utf-8").read() if os.path.exists(out) else ""
begin, mark = text.find(f"<!-- {name}:begin"), f"<!-- {name}:end -->"
end = text.find(mark)
if begin >= 0 and end >= 0:
    rest = text[end + len(mark):].lstrip("\n")
    text = text[:begin] + block + ("\n" + rest if rest else "")
else:
    text = text.rstrip("\n") + "\n\n" + block
open(out, "w", encoding="utf-8").write(text)' "$1" "$2"
}

# svc_workdir NAME: WORK, a fresh /tmp/chmcp-NAME.XXXXXX, and the EXIT trap (svc_exit)
# that stops the services and removes WORK, keeping it with KEEP_WORK=1 or on failure.
svc_workdir() {
  WORK=$(mktemp -d "/tmp/chmcp-$1.XXXXXX")
  trap svc_exit EXIT
  trap 'exit 130' INT TERM
}
svc_exit() {
  local rc=$?
  set +e
  svc_cleanup
  if [ "$rc" -ne 0 ]; then
    # CI keeps no work directory: the last lines of each service's log go to the output.
    for f in "$WORK"/*.log "$WORK"/*/*.log "$WORK"/*/log; do [ -f "$f" ] && { echo "---- $f" >&2; tail -n 40 "$f" >&2; }; done
  fi
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ne 0 ]; then echo "logs kept in $WORK" >&2; else rm -rf "$WORK"; fi
}

# svc_cleanup: stop every process this script started (by PID, never by name).
svc_cleanup() {
  local pid
  for pid in "${SVC_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  for pid in "${SVC_PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
  done
}

# --- pinned toolchains (idempotent; reinstall when the pin file changes) --------------
# venv_for NAME REQUIREMENTS: a venv at $DEPS_CACHE_DIR/NAME with exactly those pins; prints its python.
venv_for() {
  local req=$2 dir="$DEPS_CACHE_DIR/$1"
  local stamp="$dir/.pins.sha256" want
  want=$(sha256sum "$req" | cut -d' ' -f1)
  if [ ! -x "$dir/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing $(grep -v '^#' "$req" | xargs) into $dir (pip)"
    python3 -m venv "$dir"
    "$dir/bin/pip" install -q --disable-pip-version-check --cache-dir "$DEPS_CACHE_DIR/pip" -r "$req" >&2
    echo "$want" > "$stamp"
  fi
  echo "$dir/bin/python"
}

# node22: Node 22 on PATH (conformance and the Inspector need it); prints its bin dir.
node22_bin() {
  local node
  node=$("$LIB_ROOT/scripts/deps.sh" node22)
  dirname "$node"
}

# npm_for NAME DIR_WITH_PACKAGE_JSON: install that package.json (+ lock) into
# $DEPS_CACHE_DIR/NAME with Node 22's npm; prints the install dir.
npm_for() {
  local src=$2 dir="$DEPS_CACHE_DIR/$1" want
  want=$(cat "$src/package.json" "$src/package-lock.json" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ ! -d "$dir/node_modules" ] || [ "$(cat "$dir/.pins.sha256" 2>/dev/null)" != "$want" ]; then
    log "installing $src/package.json into $dir (npm)"
    mkdir -p "$dir"
    cp "$src/package.json" "$dir/"
    if [ -f "$src/package-lock.json" ]; then
      cp "$src/package-lock.json" "$dir/"
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error --cache "$DEPS_CACHE_DIR/npm") >&2
    else
      (cd "$dir" && npm install --no-audit --no-fund --loglevel=error --cache "$DEPS_CACHE_DIR/npm") >&2
    fi
    echo "$want" > "$dir/.pins.sha256"
  fi
  echo "$dir"
}

# _idp_field READY_JSON KEY: one field of the IdP's ready line.
_idp_field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# idp_up WORK: the test OpenID provider (npm oidc-provider, e2e/idp) on a free loopback
# port, stopped with the other services. Sets IDP_ISSUER, IDP_AUDIENCE, IDP_KID,
# IDP_KEY (the PEM it signs with), IDP_CLIENT_SECRET (every registered client's secret)
# and IDP_BROKER_CLIENT (the client the broker signs in as). The gateway validates tokens
# by default, so test tokens are signed with the IdP's own key (idp_sign).
idp_up() {
  local dir=$1/idp ready
  mkdir -p "$dir"
  "$LIB_ROOT/scripts/deps.sh" idp >/dev/null
  mkfifo "$dir/stdin"
  (cd "$LIB_ROOT/e2e/idp" && exec node server.js "$dir/state" <"$dir/stdin" >"$dir/log" 2>&1) &
  SVC_PIDS+=("$!")
  # The IdP exits when its stdin closes: this shell holds it open until it exits
  # (read-write, so the open never waits for a reader that failed to start).
  exec 7<>"$dir/stdin"
  for _ in $(seq 1 300); do grep -q '^IDP_READY ' "$dir/log" 2>/dev/null && break; sleep 0.1; done
  ready=$(grep '^IDP_READY ' "$dir/log" | head -1 | cut -d' ' -f2-)
  [ -n "$ready" ] || { log "the test IdP did not start: $(tail -5 "$dir/log")"; return 1; }
  IDP_ISSUER=$(_idp_field "$ready" issuer) IDP_AUDIENCE=$(_idp_field "$ready" audience)
  IDP_KID=$(_idp_field "$ready" kid) IDP_KEY=$(_idp_field "$ready" signing_key)
  IDP_CLIENT_SECRET=$(_idp_field "$ready" client_secret) IDP_BROKER_CLIENT=$(_idp_field "$ready" broker_client_id)
}

# idp_sign PREFIX FIRST LAST: one RS256 JWT per line for users PREFIX<FIRST>..PREFIX<LAST>
# (`preferred_username`), signed with the test IdP's key, valid for 12 hours.
idp_sign() {
  node -e '
const crypto = require("node:crypto"), fs = require("node:fs");
const [key, kid, iss, aud, prefix, first, last] = process.argv.slice(1);
const pem = fs.readFileSync(key);
const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
const now = Math.floor(Date.now() / 1000);
const head = b64({ alg: "RS256", typ: "JWT", kid });
const out = [];
for (let i = Number(first); i <= Number(last); i++) {
  const body = b64({ iss, aud, sub: `${prefix}-${i}`, preferred_username: `${prefix}${i}`, iat: now, exp: now + 12 * 3600 });
  const sig = crypto.sign("sha256", Buffer.from(`${head}.${body}`), pem).toString("base64url");
  out.push(`${head}.${body}.${sig}`);
}
console.log(out.join("\n"));
' "$IDP_KEY" "$IDP_KID" "$IDP_ISSUER" "$IDP_AUDIENCE" "$1" "$2" "$3"
}

# mc_gateway_yaml NAME=PORT...: a multi-cluster gateway (OAuth resource server, one view
# rule) in front of the given clusters on 127.0.0.1; ends inside `multicluster:`, so the
# caller may append more multicluster keys, then other sections. With IDP_ISSUER set
# (idp_up) the gateway validates tokens against that IdP; without it, it validates none
# and says so (validate_tokens: false with trust_clickhouse_token_checks): only for
# clusters that check every token themselves (the modern ClickHouse double).
mc_gateway_yaml() {
  local names=() pair
  for pair in "$@"; do names+=("${pair%%=*}"); done
  cat <<YAML
clickhouse:
  host: 127.0.0.1
  database: analytics
server:
  address: 127.0.0.1
  port: 8080
  oauth:
    enabled: true
    broker: false
    username_claim: preferred_username
$(if [ -n "${IDP_ISSUER:-}" ]; then
    printf '    issuer: %s\n    audience: %s\n' "$IDP_ISSUER" "$IDP_AUDIENCE"
  else
    printf '    issuer: http://127.0.0.1:9/\n    validate_tokens: false\n    trust_clickhouse_token_checks: true\n'
  fi)
  tools:
    - {type: read, view_regexp: 'analytics\\..*', prefix: 'v_'}
multicluster:
  enabled: true
  cluster_allowlist: [$(IFS=,; echo "${names[*]}" | sed 's/,/, /g')]
  clusters:
YAML
  for pair in "$@"; do echo "    ${pair%%=*}: {port: ${pair#*=}}"; done
}
