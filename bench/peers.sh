#!/usr/bin/env bash
# Side by side (issue 16, item 5): reads of the same metadata from notar-server (SQLite),
# notary-server 0.7 (Debian, memory store), nginx serving notar's bytes as static files,
# and a bare hyper server answering every request with those bytes from memory
# (notar-bench-bare: the floor of the stack notar-server is built on), once bare and once
# with notar-server's response headers (bare-headers: the same bytes on the wire). All over plain
# HTTP on loopback, with wrk, interleaved over NOTAR_BENCH_ROUNDS (default 3) rounds of
# NOTAR_BENCH_DURATION (default 5s) each; medians and ratios. Also: a cold `notar trust
# inspect` against a cold `notary list` of the 1,000-target repository, and each server's
# RSS after the reads. A markdown report on stdout, progress on stderr.
#
# notary-server serves its own repository (the same 1,000 targets, in its dialect and
# with its keys), so its byte counts differ; nginx and the bare server serve notar's.
# notar-notary is notar-server serving a Notary-dialect repository of the same 1,000
# targets, made by the stock notary CLI: the Notary dialect beside TUF 1.0 on one server.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

rounds=${NOTAR_BENCH_ROUNDS:-3}
duration=${NOTAR_BENCH_DURATION:-5s}
conns=16
need_tools cargo wrk curl python3 notary notary-server nginx

build_release
cargo build --release -q -p notar -p notar-tests --bin notar --bin notar-bench-bare
target_dir=$(target_directory)
notar=$target_dir/release/notar
bare_bin=$target_dir/release/notar-bench-bare

work=$(mktemp -d /tmp/notar-peers.XXXXXX)
chmod 755 "$work"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  [ -f "$work/nginx.pid" ] && kill -QUIT "$(cat "$work/nginx.pid")" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
wait_for() { for _ in $(seq 200); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.05; done; die "$1 did not answer"; }
rss_of() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status"; }

gun=bench.example/app-1000
notar_port=$(free_port)
NOTAR_SERVER_SECRET=bench-secret NOTAR_LOG=warn "$server_bin" --listen "127.0.0.1:$notar_port" \
  --data-dir "$work/notar-data" >/dev/null 2>&1 & pids+=($!); notar_pid=$!
wait_for "http://127.0.0.1:$notar_port/v2/"
log "notar-server: a repository of 1,000 targets"
"$publish_bin" --server "http://127.0.0.1:$notar_port" --gun "$gun" --targets 1000 --publishes 1 >/dev/null
notar_base=http://127.0.0.1:$notar_port/v2/$gun/_trust/tuf
mkdir -p "$work/static"
for file in timestamp.json targets.json; do
  curl -fsS "$notar_base/$file" -o "$work/static/$file"
done

log "notary-server: the same 1,000 targets through the notary CLI"
notary_port=$(free_port)
cat >"$work/notary-server.json" <<JSON
{"server": {"http_addr": "127.0.0.1:$notary_port"}, "trust_service": {"type": "local"},
 "storage": {"backend": "memory"}, "logging": {"level": "error"}}
JSON
notary-server -config "$work/notary-server.json" >"$work/notary.log" 2>&1 & pids+=($!); notary_pid=$!
wait_for "http://127.0.0.1:$notary_port/_notary_server/health"
export NOTARY_ROOT_PASSPHRASE=bench-root NOTARY_TARGETS_PASSPHRASE=bench-targets \
  NOTARY_SNAPSHOT_PASSPHRASE=bench-snapshot
N() { notary -s "http://127.0.0.1:$notary_port" -d "$work/notary-trust" "$@"; }
N init "$gun" >/dev/null
N key rotate "$gun" snapshot -r >/dev/null
hash=$(printf 'x' | sha256sum | cut -d' ' -f1)
for i in $(seq 1000); do N addhash "$gun" "tag-$i" 1 --sha256 "$hash" >/dev/null; done
N publish "$gun" >/dev/null
notary_base=http://127.0.0.1:$notary_port/v2/$gun/_trust/tuf

log "notar-server: the same 1,000 targets in the Notary dialect, through the notary CLI"
notary_gun=bench.example/notary-1000
NN() { notary -s "http://127.0.0.1:$notar_port" -d "$work/notary-trust-notar" "$@"; }
NN init "$notary_gun" >/dev/null
NN key rotate "$notary_gun" snapshot -r >/dev/null
for i in $(seq 1000); do NN addhash "$notary_gun" "tag-$i" 1 --sha256 "$hash" >/dev/null; done
NN publish "$notary_gun" >/dev/null
notar_notary_base=http://127.0.0.1:$notar_port/v2/$notary_gun/_trust/tuf

log "nginx and the bare server on notar's bytes"
nginx_port=$(free_port)
cat >"$work/nginx.conf" <<CONF
worker_processes $(nproc);
pid $work/nginx.pid;
error_log $work/nginx.err warn;
events { worker_connections 1024; }
http {
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$nginx_port; root $work/static; }
}
CONF
nginx -c "$work/nginx.conf"
wait_for "http://127.0.0.1:$nginx_port/timestamp.json"
declare -A bare_url same_url
for file in timestamp.json targets.json; do
  port=$(free_port)
  "$bare_bin" --listen "127.0.0.1:$port" --file "$work/static/$file" & pids+=($!)
  bare_url[$file]=http://127.0.0.1:$port/
  wait_for "${bare_url[$file]}"
  # The same, carrying the headers notar-server sends with this file: the same bytes on
  # the wire, headers included.
  headers=()
  while IFS= read -r line; do
    headers+=(--header "$line")
  done < <(curl -fsS -D - -o /dev/null "$notar_base/$file" | tr -d '\r' |
    grep -iE '^(cache-control|vary|etag):')
  port=$(free_port)
  "$bare_bin" --listen "127.0.0.1:$port" --file "$work/static/$file" "${headers[@]}" & pids+=($!)
  same_url[$file]=http://127.0.0.1:$port/
  wait_for "${same_url[$file]}"
done

url_of() { # PEER FILE
  case $1 in
    notar) echo "$notar_base/$2" ;;
    notar-notary) echo "$notar_notary_base/$2" ;;
    notary) echo "$notary_base/$2" ;;
    nginx) echo "http://127.0.0.1:$nginx_port/$2" ;;
    bare) echo "${bare_url[$2]}" ;;
    bare-headers) echo "${same_url[$2]}" ;;
  esac
}
peers=(notar notar-notary notary nginx bare bare-headers)
for round in $(seq "$rounds"); do
  for file in timestamp.json targets.json; do
    for peer in "${peers[@]}"; do
      out=$(wrk -t2 -c"$conns" -d"$duration" --latency "$(url_of "$peer" "$file")")
      read -r rps errors < <(wrk_figures <<<"$out")
      [ "$errors" = 0 ] || die "$peer $file: $errors errors"
      p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
      echo "$rps $p99" >>"$work/$peer-$file"
      log "round $round: $peer $file $rps req/s, p99 $p99 ms"
    done
  done
done

log "cold notar trust inspect against cold notary list"
for i in $(seq 5); do
  rm -rf "$work/inspect" "$work/list"
  cp -r "$work/notary-trust" "$work/list"; rm -rf "$work/list/tuf"
  t0=$EPOCHREALTIME
  NOTAR_SERVER=http://127.0.0.1:$notar_port NOTAR_TRUST_DIR=$work/inspect "$notar" trust inspect "$gun" >/dev/null 2>&1
  t1=$EPOCHREALTIME
  notary -s "http://127.0.0.1:$notary_port" -d "$work/list" list "$gun" >/dev/null
  t2=$EPOCHREALTIME
  awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f\n", (b - a) * 1000}' >>"$work/inspect-ms"
  awk -v a="$t1" -v b="$t2" 'BEGIN {printf "%.1f\n", (b - a) * 1000}' >>"$work/list-ms"
done

med_col() { median $(awk -v c="$2" '{print $c}' "$work/$1"); }
ratio() { python3 -c "print(f'{$1 / $2:.2f}')"; }
rows=()
for file in timestamp.json targets.json; do
  nb=$(curl -fsS "$(url_of notar "$file")" | wc -c)
  yb=$(curl -fsS "$(url_of notary "$file")" | wc -c)
  zb=$(curl -fsS "$(url_of notar-notary "$file")" | wc -c)
  bare=$(med_col "bare-$file" 1)
  for peer in "${peers[@]}"; do
    bytes=$nb; [ "$peer" = notary ] && bytes=$yb; [ "$peer" = notar-notary ] && bytes=$zb
    rps=$(med_col "$peer-$file" 1)
    rows+=("| $file | $peer | $bytes | $rps | $(med_col "$peer-$file" 2) | $(ratio "$rps" "$bare") |")
  done
done
cat <<MD
| file | server | bytes | req/s (median) | p99 ms | / bare |
|---|---|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")

| | median ms |
|---|---:|
| notar trust inspect, cold trust directory | $(median $(cat "$work/inspect-ms")) |
| notary list, cold cache | $(median $(cat "$work/list-ms")) |

RSS after the reads: notar-server $(rss_of "$notar_pid") MiB, notary-server $(rss_of "$notary_pid") MiB.
wrk -t2 -c$conns, $duration per run, $rounds interleaved rounds; $(nproc) CPUs shared by wrk and
the server; release builds; plain HTTP on loopback.
MD
