#!/usr/bin/env bash
# `make test`: the whole suite on a fresh machine. Installs what is missing, builds,
# runs unit and integration tests (which start their own ClickHouse servers), then the
# end-to-end checks in e2e/ (each starts and stops its own services).
# `scripts/test.sh unit|integration|e2e` (`make unit`, ...) runs one rung of the ladder.
set -euo pipefail
cd "$(dirname "$0")/.."
rung="${1:-all}"
case "$rung" in
  all|unit|integration|e2e) ;;
  *) echo "usage: $0 [unit|integration|e2e]" >&2; exit 2 ;;
esac
if [ "$rung" != unit ]; then
  scripts/deps.sh clickhouse idp chdb python lua prometheus otel openssl >/dev/null
fi
# Integration and e2e tests run target/debug/chmcp-gateway, which `cargo test` does not
# rebuild: build it first so `make integration` never tests a stale binary.
if [ "$rung" != unit ]; then
  cargo build --workspace --all-targets
fi
# Unit: pure functions and mocks, no service (the gateway's and the operator's own tests,
# the architecture and no-panic guards among them).
if [ "$rung" = all ] || [ "$rung" = unit ]; then
  cargo test -p chmcp-gateway -p chmcp-operator --no-fail-fast
fi
# Integration: real ClickHouse 18.16, the IdP, the MCP SDK, the chdb double. The
# differential SQL-guard suite runs on its own, with its report shown (how many
# statements it generated, accepted, refused).
if [ "$rung" = all ] || [ "$rung" = integration ]; then
  cargo test -p chmcp-tests --no-fail-fast -- --skip guard_never_accepts_what_clickhouse_reads --skip allow_lists_never_admit
  cargo test -p chmcp-tests --test sqlguard_chdb -- --nocapture
fi
if [ "$rung" = all ] || [ "$rung" = e2e ]; then
  for script in e2e/*.sh; do
    [ -e "$script" ] || continue
    echo "== $script"
    bash "$script"
  done
fi
