#!/usr/bin/env bash
# The OCI images, run for real with podman (no Docker daemon), on loopback:
#   1. the operator image's `crd` prints exactly crds/mcpmulticluster.yaml;
#   2. both images run as 65532, carry the OCI labels, and have no shell;
#   3. the gateway image serves a real ClickHouse 18.16: the official MCP Python SDK
#      lists the tools and runs `SELECT 1` through it;
#   4. the same image's `verify` (the ClickHouse-side verifier) against the real IdP
#      (e2e/idp/server.js): /readyz answers, and a token the IdP signed is accepted.
# Run by `make test` (scripts/test.sh), or alone: `bash e2e/image.sh`.
#
# The images come from images/build.sh (what `make image` runs). IMAGE_PROFILE=release
# (default) builds them from release binaries, as `make image` does; IMAGE_PROFILE=dev
# uses dev-profile static binaries, faster to build when only the packaging is under
# test. IMAGES_DIR=DIR tests archives already built there instead of building.
#
# Skips (exit 0, with the reason) only when this machine cannot build or run the images:
# the musl target cannot be installed, or podman itself cannot run a container (podman's
# own exit code 125); any failure of the images fails the script.
# Ends with `image: N passed, M failed`.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
source bench/lib.sh

WORK=$(mktemp -d /tmp/chmcp-image.XXXXXX)
PODMAN_NAMES=()
cleanup() {
  local rc=$? name
  set +e
  for name in "${PODMAN_NAMES[@]}"; do "${PODMAN[@]}" rm -f -t 2 "$name" >/dev/null 2>&1; done
  svc_cleanup
  if [ "${KEEP_WORK:-0}" = 1 ] || [ "$rc" -ne 0 ]; then
    echo "logs kept in $WORK" >&2
  else
    chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

PASSED=0 FAILED=0
check() { # NAME CMD...: run, record, show the output indented
  local name=$1 rc=0
  shift
  "$@" >"$WORK/check.log" 2>&1 || rc=$?
  sed 's/^/     /' "$WORK/check.log"
  if [ "$rc" -eq 0 ]; then PASSED=$((PASSED + 1)); echo "ok   $name"; else FAILED=$((FAILED + 1)); echo "FAIL $name"; fi
}

# --- dependencies and images -------------------------------------------------------------
scripts/deps.sh clickhouse idp images
PY=$(scripts/deps.sh python)
if [ -z "${IMAGES_DIR:-}" ] && ! rustup target list --installed 2>/dev/null | grep -qx x86_64-unknown-linux-musl; then
  echo "SKIP: the rust target x86_64-unknown-linux-musl is not installed and rustup could not add it" \
       "(no access to its distribution server): the static images cannot be built on this machine"
  echo "image: 0 passed, 0 failed"
  exit 0
fi
if [ -n "${IMAGES_DIR:-}" ]; then
  IMAGES="$IMAGES_DIR"
else
  IMAGES="$ROOT/target/images"
  images/build.sh --profile "${IMAGE_PROFILE:-release}" --out "$IMAGES" | tee "$WORK/images.txt"
fi
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
GATEWAY_IMAGE="ghcr.io/chmcp/chmcp-gateway:$VERSION"
OPERATOR_IMAGE="ghcr.io/chmcp/chmcp-operator:$VERSION"

# podman with private storage (nothing shared with other users of this machine). runc,
# not crun, and no default ulimits: this machine has hybrid cgroups and refuses
# RLIMIT_NOFILE changes (testing.md, "running an image").
printf '[containers]\ndefault_ulimits = []\n' >"$WORK/containers.conf"
export CONTAINERS_CONF="$WORK/containers.conf"
PODMAN=(podman --root "$WORK/podman/root" --runroot "$WORK/podman/run" --storage-driver vfs
  --runtime runc --cgroup-manager=cgroupfs --events-backend file --tmpdir "$WORK/podman/tmp")
RUN=("${PODMAN[@]}" run --rm --network host)
echo "podman run line: ${RUN[*]} IMAGE ..."
for name in chmcp-gateway chmcp-operator; do
  "${PODMAN[@]}" load --quiet -i "$IMAGES/$name-$VERSION.oci.tar" >/dev/null
done
"${PODMAN[@]}" images --format '{{.Repository}}:{{.Tag}} {{.Size}}'

# --- can podman run containers here at all? ----------------------------------------------
rc=0
"${RUN[@]}" "$OPERATOR_IMAGE" crd >"$WORK/crd.yaml" 2>"$WORK/crd.err" || rc=$?
if [ "$rc" -eq 125 ]; then
  echo "SKIP image: podman cannot run containers on this machine (podman exit 125):"
  sed 's/^/     /' "$WORK/crd.err"
  exit 0
fi

# --- 1. the operator image's `crd` --------------------------------------------------------
check "operator image: crd prints crds/mcpmulticluster.yaml" \
  bash -c "[ $rc -eq 0 ] || { cat '$WORK/crd.err'; exit 1; }; diff -u '$ROOT/crds/mcpmulticluster.yaml' '$WORK/crd.yaml' && echo identical"

# --- 2. user, labels, no shell ------------------------------------------------------------
image_facts() {
  local ref=$1 user labels
  user=$("${PODMAN[@]}" image inspect --format '{{.Config.User}}' "$ref")
  labels=$("${PODMAN[@]}" image inspect --format '{{json .Labels}}' "$ref")
  echo "user=$user labels=$labels"
  [ "$user" = "65532:65532" ] || { echo "not the non-root user 65532"; return 1; }
  "$PY" - "$labels" "$VERSION" <<'PY' || return 1
import json, sys
labels, version = json.loads(sys.argv[1]), sys.argv[2]
want = {"org.opencontainers.image.version": version, "org.opencontainers.image.licenses": "Apache-2.0"}
missing = [k for k in ("source", "revision", "created", "title") if not labels.get(f"org.opencontainers.image.{k}")]
wrong = {k: labels.get(k) for k, v in want.items() if labels.get(k) != v}
if missing or wrong:
    sys.exit(f"missing {missing}, wrong {wrong}")
PY
  # `id -u` inside would need a shell: the process's own view of its uid instead.
  local name=${ref##*/} status
  name=${name%%:*}
  status=$("${RUN[@]}" "$ref" --version 2>&1 | head -n1)
  echo "runs: $status"
  [ "$status" = "$name $VERSION" ] || { echo "expected \"$name $VERSION\""; return 1; }
  local rc=0
  "${RUN[@]}" --entrypoint /bin/sh "$ref" -c true >/dev/null 2>&1 || rc=$?
  echo "/bin/sh exit code: $rc"
  [ "$rc" -ne 0 ] || { echo "the image has a shell"; return 1; }
}
check "gateway image: 65532, OCI labels, no shell" image_facts "$GATEWAY_IMAGE"
check "operator image: 65532, OCI labels, no shell" image_facts "$OPERATOR_IMAGE"

# --- 3. the gateway image against ClickHouse, through the official Python SDK -------------
ch_write_config "$WORK/ch"
ch_up
ch_seed 100
gw_write_config "$WORK/gateway.yaml"
GW_PORT=$(free_port)
PODMAN_NAMES+=("chmcp-image-gw-$$")
"${RUN[@]}" --name "chmcp-image-gw-$$" -v "$WORK/gateway.yaml:/etc/chmcp/config.yaml:ro" \
  "$GATEWAY_IMAGE" serve --config /etc/chmcp/config.yaml \
  --set "server.port=$GW_PORT" --set server.address=127.0.0.1 >"$WORK/gateway.log" 2>&1 &
SVC_PIDS+=($!)
gateway_sdk() {
  wait_http "http://127.0.0.1:$GW_PORT/readyz" 300 || { echo "no /readyz"; cat "$WORK/gateway.log"; return 1; }
  echo "/readyz: $(curl -s "http://127.0.0.1:$GW_PORT/readyz")"
  "$PY" e2e/image/sdk_select.py "http://127.0.0.1:$GW_PORT/mcp"
}
check "gateway image: Python SDK lists tools and runs SELECT 1 on ClickHouse 18.16" gateway_sdk

# --- 4. the verifier (same image, `verify`) against the real IdP --------------------------
idp_up "$WORK" || true # a failed start fails the check below, with the IdP's log
V_PORT=$(free_port)
verifier() {
  [ -n "${IDP_ISSUER:-}" ] || { echo "the IdP did not start"; cat "$WORK/idp/log"; return 1; }
  local issuer=$IDP_ISSUER audience=$IDP_AUDIENCE token code
  cat >"$WORK/verify.yaml" <<YAML
listen: 127.0.0.1:$V_PORT
oauth: {issuer: "$issuer", audience: "$audience"}
identity: {username_claim: email, require_email_verified: true}
YAML
  PODMAN_NAMES+=("chmcp-image-verify-$$")
  "${RUN[@]}" --name "chmcp-image-verify-$$" -v "$WORK/verify.yaml:/etc/chmcp/verify.yaml:ro" \
    "$GATEWAY_IMAGE" verify --config /etc/chmcp/verify.yaml >"$WORK/verify.log" 2>&1 &
  SVC_PIDS+=($!)
  wait_http "http://127.0.0.1:$V_PORT/readyz" 300 || { echo "no /readyz"; cat "$WORK/verify.log"; return 1; }
  echo "/readyz: $(curl -s -w ' (%{http_code})' "http://127.0.0.1:$V_PORT/readyz")"
  token=$(curl -sf "$issuer/token" -d grant_type=client_credentials -d client_id=alice \
    -d "client_secret=$IDP_CLIENT_SECRET" -d 'scope=mcp:read' --data-urlencode "resource=$audience" |
    "$PY" -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  code=$(curl -s -o "$WORK/verify.out" -w '%{http_code}' -u "alice@example.com:$token" "http://127.0.0.1:$V_PORT/verify")
  echo "/verify with alice's IdP token: $code $(head -c 200 "$WORK/verify.out")"
  [ "$code" = 200 ] || return 1
  code=$(curl -s -o /dev/null -w '%{http_code}' -u "alice@example.com:not-a-token" "http://127.0.0.1:$V_PORT/verify")
  echo "/verify with a forged password: $code"
  [ "$code" = 403 ] || [ "$code" = 401 ]
}
check "gateway image: verify against the real IdP (/readyz, a real token accepted, a forged one refused)" verifier

echo "image: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
