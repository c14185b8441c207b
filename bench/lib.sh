# Shell functions the benchmark scripts share. Source it; it sets nothing but functions
# and the PostgreSQL globals start_postgres fills in (pg_url, pg_ctl, pg_data, pg_dir).

pg_ctl=
pg_data=
pg_url=
pg_dir=

log() { printf '== %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2; exit 2; }

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# Sets pg_url: NOTAR_BENCH_POSTGRES_URL, or a throw-away cluster on loopback (stop it with
# stop_postgres). Fails when there is neither. Not for a subshell: the cleanup needs the
# globals it sets.
start_postgres() {
  if [ -n "${NOTAR_BENCH_POSTGRES_URL:-}" ]; then
    pg_url=$NOTAR_BENCH_POSTGRES_URL
    return
  fi
  local pg_bin
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$pg_bin" ] || return 1
  local dir port
  # Its own directory: the postgres user cannot enter a work directory of mode 0700.
  dir=$(mktemp -d /tmp/notar-bench-pg.XXXXXX)
  pg_dir=$dir
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$dir"
  port=$(free_port)
  as_postgres "$pg_bin/initdb" -D "$dir/data" -A trust -U postgres >/dev/null || return 1
  as_postgres "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c max_connections=200" start >/dev/null || return 1
  pg_ctl=$pg_bin/pg_ctl
  pg_data=$dir/data
  pg_url=postgres://postgres@127.0.0.1:$port/postgres
}

stop_postgres() {
  if [ -n "$pg_ctl" ]; then
    as_postgres "$pg_ctl" -D "$pg_data" -m fast stop >/dev/null 2>&1 || true
  fi
  [ -z "$pg_dir" ] || rm -rf "$pg_dir"
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

# Requests/s and errors (non-2xx plus socket errors) of a wrk report on stdin: "RPS ERRORS".
wrk_figures() {
  awk '/^Requests\/sec:/ {rps = $2}
       /Non-2xx or 3xx responses:/ {n += $NF}
       /Socket errors:/ {for (i = 4; i <= NF; i += 2) n += $i}
       END {printf "%.0f %d\n", rps, n + 0}'
}

# Where cargo puts this workspace's builds.
target_directory() {
  cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}

# Builds the release binaries the benchmarks run and sets server_bin and publish_bin.
# Not --locked: a local measurement of the working tree, not a CI gate.
build_release() {
  log "building release binaries"
  cargo build --release -q -p notar-server --bin notar-server
  cargo build --release -q -p notar-tests --bin notar-bench-publish
  local target_dir
  target_dir=$(target_directory)
  server_bin=$target_dir/release/notar-server
  publish_bin=$target_dir/release/notar-bench-publish
}

# Builds the release client and server and sets notar and server_bin.
build_client_and_server() {
  log "building release binaries"
  cargo build --release -q -p notar-server --bin notar-server
  cargo build --release -q -p notar --bin notar
  local target_dir
  target_dir=$(target_directory)
  notar=$target_dir/release/notar
  server_bin=$target_dir/release/notar-server
}

# Fails unless every command named is installed.
need_tools() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed"
  done
}

# The median of the numbers given.
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print a[int((NR + 1) / 2)]}'; }
