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

duration=${NOTAR_BENCH_DURATION:-10s}
publishes=${NOTAR_BENCH_PUBLISHES:-20}
backends=${NOTAR_BENCH_BACKENDS:-sqlite postgres sqlite-tls sqlite-auth}
sizes=(1 100 1000)          # targets per repository for publish latency
read_gun=bench.example/app-1000   # the 1,000-target repository wrk reads
connections=(2 16)
files=(timestamp.json targets.json)

log() { printf '== %s\n' "$*" >&2; }
die() { printf 'http.sh: error: %s\n' "$*" >&2; exit 2; }

for tool in cargo wrk curl python3 openssl; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
done

# --- build -------------------------------------------------------------------------------
log "building release binaries"
# Not --locked: a local measurement of the working tree, not a CI gate.
cargo build --release -q -p notar-server --bin notar-server
cargo build --release -q -p notar-tests --bin notar-bench-publish
target_dir=$(cargo metadata --format-version 1 --no-deps \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
server_bin=$target_dir/release/notar-server
publish_bin=$target_dir/release/notar-bench-publish

work=$(mktemp -d /tmp/notar-bench.XXXXXX)
server_pid=
pg_ctl=
pg_data=
pg_url=
pg_dir=

stop_server() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    server_pid=
  fi
}
as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
cleanup() {
  stop_server
  if [ -n "$pg_ctl" ]; then
    as_postgres "$pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  [ -z "$pg_dir" ] || rm -rf "$pg_dir"
}
trap cleanup EXIT

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

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

# wrk's latency ("812.00us", "1.20ms", "1.01s") in milliseconds.
to_ms() {
  awk -v v="$1" 'BEGIN {
    if (v ~ /us$/) printf "%.3f", substr(v, 1, length(v) - 2) / 1000
    else if (v ~ /ms$/) printf "%.2f", substr(v, 1, length(v) - 2)
    else if (v ~ /m$/) printf "%.0f", substr(v, 1, length(v) - 1) * 60000
    else if (v ~ /s$/) printf "%.0f", substr(v, 1, length(v) - 1) * 1000
    else printf "%s", v }'
}

# Sets pg_url: the given URL, or a throw-away cluster on loopback (stopped on exit).
# Fails when there is neither. Not run in a subshell: cleanup needs pg_ctl and pg_data.
start_postgres() {
  if [ -n "${NOTAR_BENCH_POSTGRES_URL:-}" ]; then
    pg_url=$NOTAR_BENCH_POSTGRES_URL
    return
  fi
  local pg_bin
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$pg_bin" ] || return 1
  local dir port
  # Its own directory: the postgres user cannot enter $work (mode 0700, ours).
  dir=$(mktemp -d /tmp/notar-bench-pg.XXXXXX)
  pg_dir=$dir
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  port=$(free_port)
  as_postgres "$pg_bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null || return 1
  as_postgres "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir" start >/dev/null || return 1
  pg_ctl=$pg_bin/pg_ctl
  pg_data=$dir/data
  pg_url=postgres://postgres@127.0.0.1:$port/postgres
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
    local target=$url/v2/$read_gun/_trust/tuf/$file bytes
    bytes=$(curl -skf "${auth[@]}" -o /dev/null -w '%{size_download}' "$target") \
      || die "$name: GET $file failed"
    for c in "${connections[@]}"; do
      log "$name: wrk $file, $c connections, $duration"
      local out rps p99 errors
      out=$(wrk -t2 -c"$c" -d"$duration" --latency "${auth[@]}" "$target")
      rps=$(awk '/^Requests\/sec:/ {printf "%.0f", $2}' <<<"$out")
      p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
      errors=$(awk '/Non-2xx or 3xx responses:/ {n += $NF}
                    /Socket errors:/ {for (i = 4; i <= NF; i += 2) n += $i}
                    END {print n + 0}' <<<"$out")
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
