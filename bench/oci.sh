#!/usr/bin/env bash
# Push and pull benchmark (issues 5 and 11): `notar push` (stream every blob from disk,
# sign the tag, then tag) against `skopeo copy oci:… docker://…` (no signature), and
# `notar pull` (trust check, every blob verified while streaming) against `skopeo copy
# docker://… oci:…` (no trust check), for a 200 MiB image of ten 20 MiB layers and a
# 1 GiB image of one layer, against a local docker-registry, in the same run. Wall time
# and peak RSS (GNU time's maximum resident set) per run; a markdown table on stdout,
# progress on stderr. NOTAR_BENCH_RUNS (default 3) runs of each.
#
# Every push goes to a repository of its own (the registry has none of its blobs there),
# and skopeo's blob-info cache is emptied before each of its runs, so neither tool may
# mount instead of uploading.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

runs=${NOTAR_BENCH_RUNS:-3}
need_tools cargo curl python3 skopeo docker-registry /usr/bin/time

build_client_and_server

work=$(mktemp -d /tmp/notar-oci-bench.XXXXXX)
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
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$reg_port
YML
docker-registry serve "$work/registry.yml" >/dev/null 2>&1 & pids+=($!)
srv_port=$(free_port)
NOTAR_SERVER_SECRET=bench-secret NOTAR_LOG=warn "$server_bin" --listen "127.0.0.1:$srv_port" \
  --data-dir "$work/server" >/dev/null 2>&1 & pids+=($!)
wait_for "http://127.0.0.1:$reg_port/v2/"
wait_for "http://127.0.0.1:$srv_port/v2/"

# layout DIR LAYERS MIB_EACH
layout() {
  python3 - "$@" <<'PY'
import hashlib, json, os, sys
root, count, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
blobs = os.path.join(root, "blobs", "sha256"); os.makedirs(blobs)
def put_file(write):
    tmp = os.path.join(blobs, "tmp"); h = hashlib.sha256(); n = 0
    with open(tmp, "wb") as f:
        for chunk in write():
            h.update(chunk); f.write(chunk); n += len(chunk)
    d = h.hexdigest(); os.rename(tmp, os.path.join(blobs, d)); return "sha256:" + d, n
def put(data):
    return put_file(lambda: [data])[0]
layers = []
for _ in range(count):
    d, n = put_file(lambda: (os.urandom(1 << 20) for _ in range(mib)))
    layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": n})
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
}

export NOTAR_SERVER=http://127.0.0.1:$srv_port NOTAR_TRUST_DIR=$work/trust NOTAR_KDF=test \
  NOTAR_ROOT_PASSPHRASE=bench-root NOTAR_TARGETS_PASSPHRASE=bench-targets

# timed NAME CMD…: runs CMD, appends "seconds max_rss_mib" to $work/NAME.
timed() {
  local name=$1; shift
  /usr/bin/time -f '%e %M' -o "$work/time.out" "$@" >/dev/null 2>"$work/last.err" \
    || { cat "$work/last.err" >&2; die "$name failed"; }
  awk '{printf "%.2f %.0f\n", $1, $2 / 1024}' "$work/time.out" >>"$work/$name"
}
skopeo_cache() { rm -rf /var/lib/containers/cache "${HOME:-/root}/.local/share/containers/cache"; }
column() { awk -v c="$2" '{print $c}' "$work/$1" | tr '\n' ' '; }
med() { median $(awk -v c="$2" '{print $c}' "$work/$1"); }

rows=()
for image in "200 MiB:10:20" "1 GiB:1:1024"; do
  IFS=: read -r label count mib <<<"$image"
  key=$(echo "${label// /}" | tr "[:upper:]" "[:lower:]")
  log "building a $label image ($count layers of $mib MiB)"
  rm -rf "$work/layout"
  layout "$work/layout" "$count" "$mib"
  for i in $(seq "$runs"); do
    timed "$key-notar-push" "$notar" push "$work/layout" "127.0.0.1:$reg_port/notar-$key-$i:v1"
    skopeo_cache
    timed "$key-skopeo-push" skopeo --insecure-policy copy -q --dest-tls-verify=false \
      "oci:$work/layout:v1" "docker://127.0.0.1:$reg_port/skopeo-$key-$i:v1"
    rm -rf "$work/out-notar" "$work/out-skopeo"
    timed "$key-notar-pull" "$notar" pull "127.0.0.1:$reg_port/notar-$key-1:v1" -o "$work/out-notar"
    skopeo_cache
    timed "$key-skopeo-pull" skopeo --insecure-policy copy -q --src-tls-verify=false \
      "docker://127.0.0.1:$reg_port/notar-$key-1:v1" "oci:$work/out-skopeo:v1"
    log "$label run $i: push notar $(tail -n1 "$work/$key-notar-push") skopeo $(tail -n1 "$work/$key-skopeo-push"); pull notar $(tail -n1 "$work/$key-notar-pull") skopeo $(tail -n1 "$work/$key-skopeo-pull") (s, MiB)"
  done
  rm -rf "$work/out-notar" "$work/out-skopeo"
  for op in push pull; do
    for tool in notar skopeo; do
      rows+=("| $label | $op | $tool | $(column "$key-$tool-$op" 1)| $(med "$key-$tool-$op" 1) | $(med "$key-$tool-$op" 2) |")
    done
  done
done

cat <<MD
| image | operation | tool | runs (s) | median (s) | median peak RSS (MiB) |
|---|---|---|---|---:|---:|
$(printf '%s\n' "${rows[@]}")

notar push streams, hashes, signs (a new repository each run) and then tags; skopeo copy
oci: → docker:// signs nothing. notar pull checks trust data and every blob; skopeo copy
docker:// → oci: checks no trust. $(nproc) CPUs shared by registry, trust server and
client; release builds; a local docker-registry on loopback.
MD
