#!/usr/bin/env bash
# The real-browser rung: every page a person sees, in Debian's chromium driven by
# puppeteer-core (e2e/browser/chromium.mjs starts it). Each e2e/browser/*.test.sh starts
# the services it needs on free loopback ports, runs its node script and stops them;
# screenshots land in target/screenshots/<suite>/ and are named in the output.
#   e2e/browser.sh            builds the gateway (cargo) unless GATEWAY_BIN names a binary
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

NODE="$(scripts/deps.sh browser | tail -n 1)"
if ! "$NODE" -e 'process.exit(0)' 2>/dev/null || [ ! -x /usr/bin/chromium ]; then
  echo "SKIP e2e/browser: chromium or node 22 could not be installed on this machine" >&2
  exit 0
fi
if ! /usr/bin/chromium --headless --no-sandbox --disable-gpu --dump-dom about:blank >/dev/null 2>&1; then
  echo "SKIP e2e/browser: chromium is installed but cannot start here" >&2
  exit 0
fi
if [ -z "${GATEWAY_BIN:-}" ]; then
  cargo build -q -p chmcp-gateway
  GATEWAY_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/chmcp-gateway"
fi
export GATEWAY_BIN NODE
status=0
for t in e2e/browser/*.test.sh; do
  [ -e "$t" ] || continue
  echo "== $t"
  bash "$t" || { echo "FAILED: $t"; status=1; }
done
exit $status
