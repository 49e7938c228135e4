#!/usr/bin/env bash
# The Barrage image without a Docker engine: an OCI image layout made with
# umoci (Debian's), the same image deploy/image/Dockerfile describes: the
# binary at /barrage as the entrypoint, CA certificates, user 65532, a
# writable /results and /tmp, no shell. Push or load it with skopeo:
#
#   deploy/image/build.sh                       # static musl build, into target/image
#   skopeo copy oci:target/image:latest docker-archive:barrage.tar   # for `docker load`
#   skopeo copy oci:target/image:latest docker://registry.example/barrage:0.1.0
#
# BIN=path packages that binary instead of building (the test suite gives
# its own build). A dynamically linked one gets the libraries it links
# copied in beside it (ldd), so it runs the same; the released image is the
# static build. OPERATOR_BIN=path puts that BenchmarkRun operator binary at
# /barrage-operator (the build makes both). OUT sets the layout's
# directory, TAG its tag.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-target/image}
TAG=${TAG:-latest}
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)

if [ -z "${BIN:-}" ]; then
    if ! rustup target list --installed | grep -qx x86_64-unknown-linux-musl; then
        rustup target add x86_64-unknown-linux-musl
    fi
    command -v musl-gcc >/dev/null || { echo "musl-gcc is missing: apt-get install musl-tools" >&2; exit 1; }
    cargo build --release --locked -p barrage -p barrage-operator --target x86_64-unknown-linux-musl
    BIN=target/x86_64-unknown-linux-musl/release/barrage
    OPERATOR_BIN=${OPERATOR_BIN:-target/x86_64-unknown-linux-musl/release/barrage-operator}
fi
for tool in umoci skopeo; do
    command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install $tool" >&2; exit 1; }
done
certs=/etc/ssl/certs/ca-certificates.crt
[ -f "$certs" ] || { echo "$certs is missing: apt-get install ca-certificates" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$OUT"
umoci init --layout "$OUT"
umoci new --image "$OUT:$TAG"
umoci unpack --image "$OUT:$TAG" "$work/bundle" >/dev/null
root="$work/bundle/rootfs"
# Stripped: the release profile keeps debug info, 150 MB of it.
install -D -m 0755 -s "$BIN" "$root/barrage"
if [ -n "${OPERATOR_BIN:-}" ]; then
    install -D -m 0755 -s "$OPERATOR_BIN" "$root/barrage-operator"
fi
install -D -m 0644 "$certs" "$root/etc/ssl/certs/ca-certificates.crt"
printf 'barrage:x:65532:65532:barrage:/tmp:/sbin/nologin\n' >"$root/etc/passwd"
printf 'barrage:x:65532:\n' >"$root/etc/group"
install -d -m 1777 "$root/tmp"
install -d -m 0755 -o 65532 -g 65532 "$root/results"
# A dynamic binary's loader and libraries, at the paths it asks for them.
for bin in "$BIN" ${OPERATOR_BIN:+"$OPERATOR_BIN"}; do
    ldd "$bin" >/dev/null 2>&1 || continue
    { ldd "$bin" | grep -o '/[^ ]*' || true; } | sort -u | while read -r lib; do
        install -D -m 0755 "$lib" "$root$lib"
    done
done
umoci repack --image "$OUT:$TAG" "$work/bundle"
umoci config --image "$OUT:$TAG" \
    --config.entrypoint /barrage \
    --config.user 65532:65532 \
    --config.workingdir /results \
    --config.env HOME=/tmp \
    --config.label org.opencontainers.image.title=barrage \
    --config.label "org.opencontainers.image.description=Load generator and benchmark host for LLM inference servers" \
    --config.label org.opencontainers.image.source=https://github.com/barrage/barrage \
    --config.label org.opencontainers.image.licenses=Apache-2.0 \
    --config.label "org.opencontainers.image.version=$VERSION" \
    --author barrage
umoci gc --layout "$OUT"
echo "image: oci:$OUT:$TAG"
