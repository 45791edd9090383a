#!/usr/bin/env bash
# The chart's alert rules (charts/chmcp-operator/files/alerts.yaml) with promtool (apt
# `prometheus`, scripts/deps.sh prometheus):
#   1. `promtool check rules`;
#   2. `promtool test rules e2e/observability/alerts_test.yaml`;
#   3. every alert has a unit test where it fires and one where it stays quiet.
# The live side (`promtool check metrics` on a running gateway's /metrics after traffic,
# every dashboard query naming exported metrics) is tests/observability.rs.
# Usage: bash e2e/observability.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RULES="$ROOT/charts/chmcp-operator/files/alerts.yaml"
TESTS="$ROOT/e2e/observability/alerts_test.yaml"
"$ROOT/scripts/deps.sh" prometheus >/dev/null

failures=0
passes=0
pass() { passes=$((passes + 1)); printf 'ok   %s\n' "$*"; }
fail() { failures=$((failures + 1)); printf 'FAIL %s\n' "$*"; }

promtool check rules "$RULES" && pass "promtool check rules" || fail "promtool check rules"
(cd "$(dirname "$TESTS")" && promtool test rules "$(basename "$TESTS")") &&
    pass "promtool test rules" || fail "promtool test rules"

python3 - "$RULES" "$TESTS" <<'PY' && pass "every alert is tested firing and quiet" || fail "every alert is tested firing and quiet"
import re, sys
alerts = re.findall(r"^\s*- alert: (\S+)", open(sys.argv[1]).read(), re.M)
tests = open(sys.argv[2]).read()
# Each `alertname:` entry is followed by its exp_alerts: `[]` (quiet) or a list (fires).
cases = re.findall(r"alertname: (\S+)\s+exp_alerts:( \[\])?", tests)
missing = []
for a in alerts:
    kinds = {"quiet" if empty else "fires" for name, empty in cases if name == a}
    for k in ("fires", "quiet"):
        if k not in kinds:
            missing.append(f"{a} ({k})")
unknown = sorted({name for name, _ in cases} - set(alerts))
if missing or unknown:
    print("untested:", ", ".join(missing), "| tests of no alert:", ", ".join(unknown))
    sys.exit(1)
print(f"{len(alerts)} alerts, {len(cases)} cases")
PY

echo "observability: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
