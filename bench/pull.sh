#!/usr/bin/env bash
# Pull benchmark (issue 5): `notar pull` (full trust check, then every blob verified while
# streaming) against `skopeo copy docker://… oci:…` (no trust check) of the same 200 MiB,
# 10-layer image from a local docker-registry, in the same run. Prints a markdown table on
# stdout; progress on stderr. NOTAR_BENCH_RUNS (default 3) timed runs of each.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

runs=${NOTAR_BENCH_RUNS:-3}
need_tools cargo curl python3 skopeo docker-registry

log "building release binaries"
cargo build --release -q -p notar-server --bin notar-server
cargo build --release -q -p notar --bin notar
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
notar=$target_dir/release/notar
server_bin=$target_dir/release/notar-server

work=$(mktemp -d /tmp/notar-pull-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
wait_for() { for _ in $(seq 200); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; die "$1 did not answer"; }

reg_port=$(free_port)
cat >"$work/registry.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $work/registry
http:
  addr: 127.0.0.1:$reg_port
YML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 & pids+=($!)
srv_port=$(free_port)
NOTAR_SERVER_SECRET=bench-secret NOTAR_LOG=warn "$server_bin" --listen "127.0.0.1:$srv_port" \
  --data-dir "$work/server" >/dev/null 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$reg_port/v2/"
wait_for "http://127.0.0.1:$srv_port/v2/"

log "building a 200 MiB image with 10 layers"
python3 - "$work/layout" <<'PY'
import hashlib, json, os, sys
root = sys.argv[1]; blobs = os.path.join(root, "blobs", "sha256"); os.makedirs(blobs)
def put(data):
    d = hashlib.sha256(data).hexdigest()
    open(os.path.join(blobs, d), "wb").write(data); return "sha256:" + d
layers = []
for _ in range(10):
    data = os.urandom(20 * 1024 * 1024)
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": put(data), "size": len(data)})
config = json.dumps({"architecture": "amd64", "os": "linux", "config": {},
                     "rootfs": {"type": "layers", "diff_ids": [l["digest"] for l in layers]}}).encode()
manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": put(config), "size": len(config)},
    "layers": layers}).encode()
index = {"schemaVersion": 2, "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
    "digest": put(manifest), "size": len(manifest), "annotations": {"org.opencontainers.image.ref.name": "v1"}}]}
open(os.path.join(root, "index.json"), "w").write(json.dumps(index))
open(os.path.join(root, "oci-layout"), "w").write('{"imageLayoutVersion":"1.0.0"}')
PY

export NOTAR_SERVER=http://127.0.0.1:$srv_port NOTAR_TRUST_DIR=$work/trust NOTAR_KDF=test \
  NOTAR_ROOT_PASSPHRASE=bench-root NOTAR_TARGETS_PASSPHRASE=bench-targets
ref=127.0.0.1:$reg_port/bench/app:v1
log "pushing and signing $ref"
"$notar" push "$work/layout" "$ref" >/dev/null 2>&1

now() { python3 -c 'import time; print(time.monotonic())'; }
notar_times=(); skopeo_times=()
for i in $(seq "$runs"); do
  rm -rf "$work/out-notar" "$work/out-skopeo"
  t0=$(now); "$notar" pull "$ref" -o "$work/out-notar" >/dev/null 2>&1; t1=$(now)
  skopeo --insecure-policy copy -q --src-tls-verify=false "docker://$ref" "oci:$work/out-skopeo:v1" >/dev/null; t2=$(now)
  notar_times+=("$(python3 -c "print(f'{$t1-$t0:.2f}')")")
  skopeo_times+=("$(python3 -c "print(f'{$t2-$t1:.2f}')")")
  log "run $i: notar ${notar_times[-1]} s, skopeo ${skopeo_times[-1]} s"
done
cat <<MD
| tool (200 MiB, 10 layers, local registry) | runs (s) | median (s) |
|---|---|---|
| notar pull (trust check + verified blobs) | ${notar_times[*]} | $(median "${notar_times[@]}") |
| skopeo copy docker:// → oci: (no trust check) | ${skopeo_times[*]} | $(median "${skopeo_times[@]}") |

$(nproc) CPUs; registry, trust server and client share them. Release build.
MD
