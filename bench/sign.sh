#!/usr/bin/env bash
# Signing benchmark (issue 16): the wall time of publishing signed tags, CLI to CLI, in one
# run: `notar trust sign` with default-strength keys (argon2id 64 MiB, 3 passes, 4 lanes)
# against `notary add` + `notary publish` (Debian's notary 0.7 and notary-server, memory
# store), both over HTTPS on loopback, each into a small repository that already exists.
#
#   one tag        notar trust sign gun:tN            vs  notary add gun tN f; notary publish gun
#   one, agent     the same with `notar agent` holding the targets key
#   ten tags       notar trust sign gun:a1 … gun:a10  vs  ten notary add, one notary publish
#
# NOTAR_BENCH_RUNS (default 7) interleaved rounds; medians and ratios as a markdown table
# on stdout, progress on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

runs=${NOTAR_BENCH_RUNS:-7}
need_tools cargo curl openssl python3 notary notary-server

build_client_and_server

work=$(mktemp -d /tmp/notar-sign-bench.XXXXXX)
pids=()
cleanup() {
  [ -x "$notar" ] && NOTAR_TRUST_DIR=$work/notar "$notar" agent --stop >/dev/null 2>&1 || true
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

log "certificates"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/ca.ec" 2>/dev/null
openssl req -x509 -new -key "$work/ca.ec" -sha256 -days 2 -subj "/CN=bench CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" -out "$work/ca.crt"
openssl ecparam -name prime256v1 -genkey -noout -out "$work/server.ec" 2>/dev/null
openssl pkcs8 -topk8 -nocrypt -in "$work/server.ec" -out "$work/server.key"
openssl req -new -key "$work/server.key" -subj "/CN=localhost" -out "$work/server.csr"
printf "basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n" >"$work/server.ext"
openssl x509 -req -in "$work/server.csr" -CA "$work/ca.crt" -CAkey "$work/ca.ec" -CAcreateserial \
  -days 2 -sha256 -extfile "$work/server.ext" -out "$work/server.crt" 2>/dev/null

notary_port=$(free_port)
cat >"$work/notary-server.json" <<JSON
{"server": {"http_addr": "127.0.0.1:$notary_port", "tls_key_file": "$work/server.key", "tls_cert_file": "$work/server.crt"},
 "trust_service": {"type": "local"}, "storage": {"backend": "memory"}, "logging": {"level": "error"}}
JSON
notary-server -config "$work/notary-server.json" >"$work/notary-server.log" 2>&1 & pids+=($!)
notar_port=$(free_port)
NOTAR_SERVER_SECRET=bench-secret NOTAR_LOG=warn "$server_bin" --listen "127.0.0.1:$notar_port" \
  --data-dir "$work/server" --tls-cert "$work/server.crt" --tls-key "$work/server.key" \
  >"$work/notar-server.log" 2>&1 & pids+=($!)
for url in "https://localhost:$notary_port/_notary_server/health" "https://localhost:$notar_port/v2/"; do
  for _ in $(seq 200); do curl -fsS --cacert "$work/ca.crt" "$url" >/dev/null 2>&1 && break; sleep 0.05; done
done

export NOTARY_ROOT_PASSPHRASE=bench-root NOTARY_TARGETS_PASSPHRASE=bench-targets \
  NOTARY_SNAPSHOT_PASSPHRASE=bench-snapshot
export NOTAR_SERVER=https://localhost:$notar_port NOTAR_CA_CERT=$work/ca.crt \
  NOTAR_TRUST_DIR=$work/notar NOTAR_ROOT_PASSPHRASE=bench-root NOTAR_TARGETS_PASSPHRASE=bench-targets
unset NOTAR_KDF
gun=localhost:5000/bench/app
N() { notary -s "https://localhost:$notary_port" -d "$work/notary" --tlscacert "$work/ca.crt" "$@"; }
digest=$(printf 'manifest' | sha256sum | cut -d' ' -f1)
printf 'manifest' >"$work/f"

log "creating both repositories"
N init "$gun" >/dev/null
N key rotate "$gun" snapshot -r >/dev/null
N add "$gun" t0 "$work/f" >/dev/null
N publish "$gun" >/dev/null
"$notar" trust sign "$gun:t0" --digest "sha256:$digest" --size 8 >/dev/null 2>&1

# timed NAME CMD…: appends the wall time in ms of CMD to $work/NAME (bash's clock: no
# process is started to read it).
timed() {
  local name=$1 t0 t1; shift
  t0=$EPOCHREALTIME
  "$@" >/dev/null 2>"$work/last.err" || { cat "$work/last.err" >&2; die "$name failed"; }
  t1=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", (b - a) * 1000}' >>"$work/$name"
}
notary_one() { N add "$gun" "$1" "$work/f" && N publish "$gun"; }
notary_ten() {
  local i
  for i in $(seq 10); do N add "$gun" "$1-$i" "$work/f" || return 1; done
  N publish "$gun"
}
notar_ten() {
  local refs=() i
  for i in $(seq 10); do refs+=("$gun:$1-$i"); done
  "$notar" trust sign "${refs[@]}" --digest "sha256:$digest" --size 8
}
agent_one() { NOTAR_TARGETS_PASSPHRASE= "$notar" trust sign "$gun:$1" --digest "sha256:$digest" --size 8; }

for i in $(seq "$runs"); do
  timed notary-one notary_one "n$i"
  timed notar-one "$notar" trust sign "$gun:s$i" --digest "sha256:$digest" --size 8
  "$notar" agent --lifetime 10m >/dev/null 2>&1
  "$notar" trust sign "$gun:warm$i" --digest "sha256:$digest" --size 8 >/dev/null 2>&1
  timed notar-agent agent_one "g$i"
  "$notar" agent --stop >/dev/null 2>&1
  timed notary-ten notary_ten "nt$i"
  timed notar-ten notar_ten "st$i"
  log "round $i: one tag notary $(tail -n1 "$work/notary-one") notar $(tail -n1 "$work/notar-one") agent $(tail -n1 "$work/notar-agent"); ten tags notary $(tail -n1 "$work/notary-ten") notar $(tail -n1 "$work/notar-ten") (ms)"
done

med() { median $(cat "$work/$1"); }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
n1=$(med notary-one); s1=$(med notar-one); a1=$(med notar-agent); n10=$(med notary-ten); s10=$(med notar-ten)
cat <<MD
| publish, CLI to CLI, HTTPS | notary add + publish (ms) | notar trust sign (ms) | notar / notary |
|---|---:|---:|---:|
| one tag, default-strength key | $n1 | $s1 | $(ratio "$s1" "$n1") |
| one tag, \`notar agent\` holds the key | $n1 | $a1 | $(ratio "$a1" "$n1") |
| ten tags in one command | $n10 | $s10 | $(ratio "$s10" "$n10") |

Medians of $runs interleaved rounds; $(nproc) CPUs shared by both servers and clients; release
builds; notary-server 0.7 (memory store, server-managed snapshot) and notar-server (SQLite).
notar's default key: argon2id 64 MiB, 3 passes, $(python3 -c 'import os; print(max(4, min(16, os.cpu_count())))') lanes.
MD
