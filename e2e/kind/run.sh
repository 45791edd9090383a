#!/usr/bin/env bash
# End-to-end test of the operator on a real (kind) Kubernetes cluster.
#
# THIS SCRIPT CANNOT RUN ON THE CI MACHINES OF THIS PROJECT: they have no Docker engine,
# so there is no kind cluster there. It has not been run here either: it is still on paper. It is for a developer machine (or a CI runner) with
# Docker, kind, kubectl and helm on PATH. What it proves that the rest of the suite
# cannot: the API server accepts the CRD (CEL cost limits, structural schema), server-side
# apply and owner references behave, RBAC is sufficient, pods start under the hardened
# security context, and the resource reaches Ready.
#
# Steps: build the operator and gateway images with `make image` (buildah, the same OCI
# archives a release ships; no Docker build), create a kind cluster, load the archives
# (`kind load image-archive`), install the chart with its default image names (the
# archives carry exactly those tags), create the Secrets, apply the example and wait for Ready. ClickHouse
# and the identity provider are not deployed: the gateway's /readyz does not need them in
# OAuth mode (no static credentials to probe).
#
# Usage: bash e2e/kind/run.sh            (KEEP_CLUSTER=1 keeps the cluster afterwards)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CLUSTER="${KIND_CLUSTER:-chmcp-e2e}"
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml")"
IMAGES="${IMAGES_DIR:-$ROOT/target/images}"
NS=mcp

for tool in docker kind kubectl helm; do
    command -v "$tool" >/dev/null || { echo "needs $tool on PATH (see the header)" >&2; exit 2; }
done
docker info >/dev/null 2>&1 || { echo "no Docker engine reachable (see the header)" >&2; exit 2; }

cleanup() {
    if [ "${KEEP_CLUSTER:-0}" != 1 ]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
}
trap cleanup EXIT

echo "==> building the image archives (make image)"
[ -n "${IMAGES_DIR:-}" ] || make -C "$ROOT" image

echo "==> kind cluster $CLUSTER"
kind get clusters | grep -qx "$CLUSTER" || kind create cluster --name "$CLUSTER" --wait 120s
for name in chmcp-operator chmcp-gateway; do
    kind load image-archive --name "$CLUSTER" "$IMAGES/$name-$VERSION.oci.tar"
done

echo "==> installing the chart"
helm upgrade --install chmcp-operator "$ROOT/charts/chmcp-operator" \
    --namespace chmcp-system --create-namespace \
    --set image.pullPolicy=Never --set replicaCount=2 --wait --timeout 180s
helm test chmcp-operator --namespace chmcp-system --timeout 60s

echo "==> secrets and the example resource"
kubectl create namespace "$NS" --dry-run=client -o yaml | kubectl apply -f -
kubectl -n "$NS" create secret generic mcp-oauth \
    --from-literal=client-secret=e2e-client-secret \
    --from-literal=signing-secret="$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    --dry-run=client -o yaml | kubectl apply -f -
openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=e2e-ca -days 1 \
    -keyout /dev/null -out /tmp/chmcp-e2e-ca.pem 2>/dev/null
kubectl -n "$NS" create secret generic ch-ca --from-file=ca.crt=/tmp/chmcp-e2e-ca.pem \
    --dry-run=client -o yaml | kubectl apply -f -
kubectl apply -f "$ROOT/charts/chmcp-operator/examples/mcpmulticluster.yaml"

echo "==> waiting for Ready"
if ! kubectl -n "$NS" wait --for=condition=Ready mcpmc/analytics --timeout=300s; then
    kubectl -n "$NS" describe mcpmc/analytics || true
    kubectl -n chmcp-system logs deploy/chmcp-operator --tail=100 || true
    exit 1
fi
kubectl -n "$NS" get mcpmc analytics
kubectl -n "$NS" get mcpmc analytics -o jsonpath='{.status.endpoints}'; echo

echo "==> a bad resource is refused by the API server (CEL)"
if sed 's/name: otel/name: Otel_EU/' "$ROOT/charts/chmcp-operator/examples/mcpmulticluster.yaml" |
    kubectl apply --dry-run=server -f - 2>/dev/null; then
    echo "the API server accepted an invalid cluster name" >&2
    exit 1
fi
echo "e2e kind: passed"
