#!/usr/bin/env bash
# `make test`: the whole suite on a fresh machine. Installs what is missing, builds,
# runs unit and integration tests (which start their own ClickHouse servers), then the
# end-to-end checks in e2e/ (each starts and stops its own services).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh clickhouse idp lua
cargo build --workspace --all-targets
cargo test --workspace --no-fail-fast
for script in e2e/*.sh; do
  [ -e "$script" ] || continue
  echo "== $script"
  bash "$script"
done
