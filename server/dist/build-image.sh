#!/usr/bin/env bash
# Builds the notar-server OCI image without a daemon and writes it as an OCI image layout.
#
#   server/dist/build-image.sh OUT-DIR
#
# 1. Compiles notar-server for x86_64-unknown-linux-gnu with crt-static (no dynamic
#    loader, no libc on the image), profile `image` (release, symbols stripped).
# 2. Builds server/dist/Dockerfile with Debian's buildah (vfs storage, chroot isolation,
#    timestamps at 0, so the same binary gives the same image digest).
# 3. Writes OUT-DIR/layout, an OCI image layout tagged with the crate version, and
#    OUT-DIR/image.txt (digest, size, layer count). buildah's storage lives under OUT-DIR
#    too, and is removed afterwards.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
out=${1:?usage: build-image.sh OUT-DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)
target_dir=${CARGO_TARGET_DIR:-$root/target}
triple=x86_64-unknown-linux-gnu

RUSTFLAGS="-C target-feature=+crt-static" cargo build --manifest-path "$root/Cargo.toml" \
  --locked --profile image -p notar-server --bin notar-server --target "$triple"
binary="$target_dir/$triple/image/notar-server"
# A static binary has no PT_INTERP program header (no dynamic loader to ask for).
python3 - "$binary" <<'PY' || { echo "build-image: $binary is dynamically linked" >&2; exit 1; }
import struct, sys
data = open(sys.argv[1], "rb").read()
assert data[:4] == b"\x7fELF" and data[4] == 2, "a 64-bit ELF file"
phoff, = struct.unpack_from("<Q", data, 0x20)
phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
types = [struct.unpack_from("<I", data, phoff + i * phentsize)[0] for i in range(phnum)]
sys.exit(1 if 3 in types else 0)  # PT_INTERP = 3
PY

version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$root/Cargo.toml" | head -n 1)
revision=$(git -C "$root" rev-parse HEAD 2>/dev/null || echo unknown)
context=$(mktemp -d)
storage=$(mktemp -d "$out/buildah.XXXXXX")
trap 'rm -rf "$context"; buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs rm --all >/dev/null 2>&1 || true; rm -rf "$storage"' EXIT
install -D -m 0555 "$binary" "$context/rootfs/usr/local/bin/notar-server"
mkdir -p "$context/rootfs/var/lib" "$context/data"
chmod -R u=rwX,go=rX "$context/rootfs/usr" "$context/rootfs/var"
chmod 0555 "$context/rootfs/usr/local/bin/notar-server"
sha=$(sha256sum "$binary" | cut -d' ' -f1)

buildah=(buildah --root "$storage/root" --runroot "$storage/run" --storage-driver vfs)
"${buildah[@]}" bud --quiet --isolation chroot --format oci --timestamp 0 \
  --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
  --build-arg "BINARY_SHA256=$sha" \
  -f "$root/server/dist/Dockerfile" -t "localhost/notar-server:$version" "$context" >/dev/null
rm -rf "$out/layout"
"${buildah[@]}" push --quiet "localhost/notar-server:$version" "oci:$out/layout:$version"

manifest=$(python3 - "$out/layout" <<'PY'
import json, sys, os
layout = sys.argv[1]
index = json.load(open(os.path.join(layout, "index.json")))
desc = index["manifests"][0]
algo, hexd = desc["digest"].split(":")
manifest = json.load(open(os.path.join(layout, "blobs", algo, hexd)))
size = desc["size"] + manifest["config"]["size"] + sum(l["size"] for l in manifest["layers"])
print(f"digest={desc['digest']}\nbytes={size}\nlayers={len(manifest['layers'])}")
PY
)
printf 'version=%s\n%s\n' "$version" "$manifest" | tee "$out/image.txt"
