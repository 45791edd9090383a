#!/usr/bin/env bash
# Builds the two OCI images, `chmcp-gateway` (serve, and `verify`) and `chmcp-operator`,
# without a Docker daemon and without pulling anything (operator.md, "Images"):
#   static musl binaries (cargo) → a root filesystem of exactly the binary, /etc/passwd
#   and /etc/group naming the non-root user 65532, Debian's CA bundle and an empty /tmp
#   → `buildah from scratch` with --storage-driver vfs → OCI archives.
# No shell, no package manager, no libc in the images.
#
# Usage: images/build.sh [--profile release|dev] [--out DIR]
#   --profile  cargo profile of the binaries (default release; the e2e test may use dev)
#   --out      where the archives go (default target/images)
# Prints one line per image: `IMAGE <ref> <archive> <size>`.
#
# Tags are the defaults the chart and the operator use: ghcr.io/chmcp/<name>:<version>
# with <version> the workspace version (Cargo.toml), which is also the chart's appVersion
# (e2e/helm.sh checks they agree). Layer timestamps come from SOURCE_DATE_EPOCH (default:
# the last commit's time) so a rebuild from the same tree gives the same layers.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROFILE=release
OUT="$ROOT/target/images"
while [ $# -gt 0 ]; do
    case "$1" in
        --profile) PROFILE=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        *) echo "usage: images/build.sh [--profile release|dev] [--out DIR]" >&2; exit 2 ;;
    esac
done

REGISTRY="${IMAGE_REGISTRY:-ghcr.io/chmcp}"
TARGET=x86_64-unknown-linux-musl
UID_GID=65532
SOURCE_URL="https://github.com/chmcp/chmcp"

cd "$ROOT"
"$ROOT/scripts/deps.sh" images >&2
VERSION="$(sed -n '/^\[workspace.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)"
[ -n "$VERSION" ] || { echo "no version in Cargo.toml [workspace.package]" >&2; exit 1; }
REVISION="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git status --porcelain 2>/dev/null)" ]; then REVISION="$REVISION-dirty"; fi
export SOURCE_DATE_EPOCH="${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || echo 0)}"
CREATED="$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)"

echo "building static binaries ($PROFILE, $TARGET)" >&2
cargo build --locked --profile "$PROFILE" --target "$TARGET" -p chmcp-gateway -p chmcp-operator --bins >&2
# cargo names the dev profile's directory `debug`.
BIN_DIR="$ROOT/target/$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")"

mkdir -p "$OUT"
WORK="$(mktemp -d "$OUT/.work.XXXXXX")"
# buildah's own storage, private to this run: nothing shared with other builds or users.
BUILDAH=(buildah --root "$WORK/storage" --runroot "$WORK/run" --storage-driver vfs)
cleanup() {
    "${BUILDAH[@]}" rm --all >/dev/null 2>&1 || true
    # vfs layers may hold read-only directories.
    chmod -R u+w "$WORK" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

# rootfs NAME DIR: the image's whole filesystem.
rootfs() {
    local name=$1 dir=$2 bin="$BIN_DIR/$1"
    [ -x "$bin" ] || { echo "no binary at $bin" >&2; exit 1; }
    # A FROM-scratch image has no loader: refuse a dynamically linked binary here rather
    # than ship an image that cannot start.
    if readelf -l "$bin" | grep -q 'Requesting program interpreter'; then
        echo "$bin is dynamically linked; the image needs a static binary" >&2
        exit 1
    fi
    mkdir -p "$dir/usr/local/bin" "$dir/etc/ssl/certs" "$dir/tmp"
    install -m 0755 "$bin" "$dir/usr/local/bin/$name"
    # Debian's ca-certificates bundle: the gateway may reach ClickHouse or an identity
    # provider over TLS with the system roots.
    install -m 0644 /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
    printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/tmp:/sbin/nologin\n' \
        "$UID_GID" "$UID_GID" >"$dir/etc/passwd"
    printf 'root:x:0:\nnonroot:x:%s:\n' "$UID_GID" >"$dir/etc/group"
    chmod 1777 "$dir/tmp"
    find "$dir" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
}

# image NAME DEFAULT_CMD DESCRIPTION PORT
image() {
    local name=$1 cmd=$2 description=$3 port=$4
    local ref="$REGISTRY/$name:$VERSION" archive="$OUT/$name-$VERSION.oci.tar" ctr
    rootfs "$name" "$WORK/$name"
    ctr="$("${BUILDAH[@]}" from --name "$name-build" scratch)"
    "${BUILDAH[@]}" copy --quiet "$ctr" "$WORK/$name" / >/dev/null
    "${BUILDAH[@]}" config \
        --user "$UID_GID:$UID_GID" \
        --workingdir / \
        --entrypoint "[\"/usr/local/bin/$name\"]" \
        --cmd "[\"$cmd\"]" \
        --port "$port" \
        --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
        --label org.opencontainers.image.title="$name" \
        --label org.opencontainers.image.description="$description" \
        --label org.opencontainers.image.source="$SOURCE_URL" \
        --label org.opencontainers.image.version="$VERSION" \
        --label org.opencontainers.image.revision="$REVISION" \
        --label org.opencontainers.image.licenses=Apache-2.0 \
        --label org.opencontainers.image.created="$CREATED" \
        "$ctr"
    rm -f "$archive"
    "${BUILDAH[@]}" commit --quiet --format oci --timestamp "$SOURCE_DATE_EPOCH" --rm \
        "$ctr" "oci-archive:$archive:$ref" >/dev/null
    echo "IMAGE $ref $archive $(du -h "$archive" | cut -f1)"
}

image chmcp-gateway serve "chmcp MCP gateway for ClickHouse fleets (serve), and the ClickHouse-side token verifier (verify)" 8080
image chmcp-operator run "Kubernetes operator that runs chmcp gateways from McpMultiCluster resources" 8080
