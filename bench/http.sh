#!/usr/bin/env bash
# HTTP benchmark of notar-server on loopback, on SQLite and on PostgreSQL: publish latency
# (notar-bench-publish) and read throughput (wrk). Prints a markdown report on stdout;
# progress goes to stderr. See bench/README.md.
#
# Environment (all optional):
#   NOTAR_BENCH_POSTGRES_URL  a PostgreSQL database to use; without it a throw-away cluster
#                             is started on loopback when PostgreSQL is installed
#   NOTAR_BENCH_DURATION      length of each wrk run (default 10s)
#   NOTAR_BENCH_PUBLISHES     timed publishes per repository size (default 20)
#   NOTAR_BENCH_BACKENDS      which backends to run (default "sqlite postgres sqlite-tls
#                             sqlite-auth"; sqlite-tls publishes over plain HTTP, then reads
#                             over HTTPS; sqlite-auth reads with a bearer token from the
#                             built-in issuer)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

duration=${NOTAR_BENCH_DURATION:-10s}
publishes=${NOTAR_BENCH_PUBLISHES:-20}
backends=${NOTAR_BENCH_BACKENDS:-sqlite postgres sqlite-tls sqlite-auth}
sizes=(1 100 1000)          # targets per repository for publish latency
read_gun=bench.example/app-1000   # the 1,000-target repository wrk reads
connections=(2 16)
# "+gzip": the same file read with Accept-Encoding: gzip (bytes are then the gzip bytes).
files=(timestamp.json targets.json targets.json+gzip)

need_tools cargo wrk curl python3 openssl

build_release

work=$(mktemp -d /tmp/notar-bench.XXXXXX)
server_pid=

stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
cleanup() {
  stop_server
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT

# Starts notar-server for backend $1 (database URL $2, empty for SQLite in the data dir);
# with $3 = tls, over HTTPS with a self-signed certificate (curl and wrk do not verify it).
start_server() {
  local name=$1 database=$2 mode=${3:-plain} port
  port=$(free_port)
  url=http://127.0.0.1:$port
  local args=(--listen "127.0.0.1:$port" --data-dir "$work/data-$name")
  [ -n "$database" ] && args+=(--database "$database")
  if [ "$mode" = tls ]; then
    [ -f "$work/tls.crt" ] || openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
      -nodes -days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
      -keyout "$work/tls.key" -out "$work/tls.crt" 2>/dev/null
    args+=(--tls-cert "$work/tls.crt" --tls-key "$work/tls.key")
    url=https://127.0.0.1:$port
  fi
  if [ "$mode" = auth ]; then
    printf 'bench password\n' | NOTAR_LOG=warn "$server_bin" --data-dir "$work/data-$name" \
      user add bench --password-stdin >/dev/null
    args+=(--issuer --token-lifetime 3600)
  fi
  NOTAR_SERVER_SECRET=bench-secret NOTAR_LOG=warn "$server_bin" "${args[@]}" \
    >"$work/server-$name.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 1 100); do
    # 401 is an answer too: the challenge of a server with auth on.
    case $(curl -sk -o /dev/null -w '%{http_code}' "$url/v2/") in 200 | 401) return 0 ;; esac
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
  done
  cat "$work/server-$name.log" >&2
  die "notar-server ($name) did not come up on $url"
}

# Prints "VmRSS VmHWM" of the server in MiB.
server_memory() {
  awk '/^VmRSS:/ {rss = $2} /^VmHWM:/ {hwm = $2}
       END {printf "%.1f %.1f\n", rss / 1024, hwm / 1024}' "/proc/$server_pid/status"
}

publish_rows=()
read_rows=()
memory_rows=()

run_backend() {
  local name=$1 database=$2
  log "$name: starting notar-server"
  start_server "$name" "$database"

  for n in "${sizes[@]}"; do
    log "$name: publish latency, $n targets, $publishes publishes"
    local out
    out=$("$publish_bin" --server "$url" --gun "bench.example/app-$n" --targets "$n" \
      --publishes "$publishes")
    # targets=N publishes=R init_ms=… median_ms=… p90_ms=… min_ms=… max_ms=…
    local -A m=()
    local kv
    for kv in $out; do m[${kv%%=*}]=${kv#*=}; done
    publish_rows+=("| $name | $n | ${m[median_ms]} | ${m[p90_ms]} | ${m[max_ms]} | ${m[init_ms]} |")
  done
  local after_publish
  after_publish=$(server_memory)
  local auth=()
  if [[ $name == *-tls ]]; then
    # The same data, now over HTTPS, for the reads.
    stop_server
    log "$name: restarting notar-server with TLS"
    start_server "$name" "$database" tls
  elif [[ $name == *-auth ]]; then
    # The same data, now behind token auth: every read carries a token to verify.
    stop_server
    log "$name: restarting notar-server with the built-in issuer"
    start_server "$name" "$database" auth
    local token
    token=$(curl -sf -u 'bench:bench password' \
      "$url/auth/token?service=notar&scope=repository:$read_gun:pull" \
      | python3 -c 'import json, sys; print(json.load(sys.stdin)["token"])') \
      || die "$name: no token from the issuer"
    auth=(-H "Authorization: Bearer $token")
  fi

  for file in "${files[@]}"; do
    local target=$url/v2/$read_gun/_trust/tuf/${file%+gzip} bytes
    local headers=("${auth[@]}")
    [[ $file == *+gzip ]] && headers+=(-H "Accept-Encoding: gzip")
    bytes=$(curl -skf "${headers[@]}" -o /dev/null -w '%{size_download}' "$target") \
      || die "$name: GET $file failed"
    for c in "${connections[@]}"; do
      log "$name: wrk $file, $c connections, $duration"
      local out rps p99 errors
      out=$(wrk -t2 -c"$c" -d"$duration" --latency "${headers[@]}" "$target")
      read -r rps errors < <(wrk_figures <<<"$out")
      p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
      read_rows+=("| $name | $file | $bytes | $c | $rps | $p99 | $errors |")
    done
  done
  local after_reads
  after_reads=$(server_memory)
  memory_rows+=("| $name | ${after_publish% *} | ${after_reads% *} | ${after_reads#* } |")
  stop_server
}

for backend in $backends; do
  case $backend in
    sqlite) run_backend sqlite "" ;;
    sqlite-tls) run_backend sqlite-tls "" ;;
    sqlite-auth) run_backend sqlite-auth "" ;;
    postgres)
      if start_postgres; then
        run_backend postgres "$pg_url"
      else
        log "postgres: skipped (set NOTAR_BENCH_POSTGRES_URL or install postgresql)"
      fi
      ;;
    *) die "unknown backend $backend" ;;
  esac
done

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cat <<EOF
## notar-server over HTTP on loopback

$(nproc) CPUs ($cpu); server and load generator share them. Release build, \`NOTAR_LOG=warn\`.

### Publish latency

One targets upload (validation, server-signed snapshot and timestamp, one transaction),
in ms over $publishes publishes per size; \`first\` is the initial root + targets upload.

| backend | targets | median | p90 | max | first |
|---|---:|---:|---:|---:|---:|
$(printf '%s\n' "${publish_rows[@]}")

### Reads

\`wrk -t2 -c<connections> -d$duration --latency\` against the 1,000-target repository.

| backend | file | bytes | connections | requests/s | p99 ms | errors |
|---|---|---:|---:|---:|---:|---:|
$(printf '%s\n' "${read_rows[@]}")

### Server memory (MiB)

| backend | VmRSS after publishes | VmRSS after reads | VmHWM |
|---|---:|---:|---:|
$(printf '%s\n' "${memory_rows[@]}")
EOF
