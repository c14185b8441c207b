#!/usr/bin/env bash
# notar-server with many repositories: fills N of them (default 100,000) on SQLite and on
# PostgreSQL, then measures GET timestamp.json p99 and requests/s for one hot repository,
# for repositories chosen uniformly, and for a Zipf-like choice (most reads on a few), and
# the server's RSS against its cache budget. Prints a markdown report on stdout.
#
# Environment (all optional):
#   NOTAR_BENCH_REPOS         repositories to fill (default 100000)
#   NOTAR_BENCH_CACHE_BYTES   the server's --cache-bytes, one or more: the reads run once per
#                             budget, each on a server started afresh on the filled
#                             database (default "67108864 268435456": 64 and 256 MiB)
#   NOTAR_BENCH_DURATION      length of each wrk run (default 10s)
#   NOTAR_BENCH_BACKENDS      default "sqlite postgres"
#   NOTAR_BENCH_POSTGRES_URL  a database to use instead of a throw-away cluster
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

repos=${NOTAR_BENCH_REPOS:-100000}
budgets=${NOTAR_BENCH_CACHE_BYTES:-67108864 268435456}
duration=${NOTAR_BENCH_DURATION:-10s}
backends=${NOTAR_BENCH_BACKENDS:-sqlite postgres}
need_tools cargo wrk curl python3
build_release

work=$(mktemp -d /tmp/notar-bench.XXXXXX)
pid=
cleanup() {
  [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT

# wrk scripts: the path of each request. "uniform" picks any repository; "zipf" picks
# repository floor(N^u) - 1 for uniform u, so that low numbers are read far more often
# (a log-uniform, Zipf-like spread).
cat >"$work/uniform.lua" <<LUA
math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/v2/bench.example/many-" .. math.random(0, $repos - 1) .. "/_trust/tuf/timestamp.json")
end
LUA
cat >"$work/zipf.lua" <<LUA
math.randomseed(os.time() + 1)
request = function()
  local i = math.floor($repos ^ math.random()) - 1
  return wrk.format("GET", "/v2/bench.example/many-" .. i .. "/_trust/tuf/timestamp.json")
end
LUA

rows=()
fill_rows=()
start_server() { # NAME DATABASE BUDGET: starts a server, sets pid and url
  local name=$1 database=$2 budget=$3 port
  port=$(free_port)
  url=http://127.0.0.1:$port
  local args=(--listen "127.0.0.1:$port" --data-dir "$work/data-$name" --cache-bytes "$budget")
  [ -n "$database" ] && args+=(--database "$database")
  NOTAR_SERVER_SECRET=bench-secret NOTAR_LOG=warn "$server_bin" "${args[@]}" \
    >>"$work/server-$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "$url/v2/")" = 200 ] && break
    sleep 0.1
  done
}

stop_server() {
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
}

run_backend() {
  local name=$1 database=$2 budget
  start_server "$name" "$database" "${budgets%% *}"
  log "$name: filling $repos repositories"
  local filled
  filled=$("$publish_bin" --server "$url" --gun bench.example/many --targets 1 \
    --repos "$repos" --concurrency 8)
  local -A f=()
  local kv
  for kv in $filled; do f[${kv%%=*}]=${kv#*=}; done
  fill_rows+=("| $name | $repos | ${f[seconds]} | ${f[per_second]} |")
  stop_server
  for budget in $budgets; do
    start_server "$name" "$database" "$budget"
    local mib=$((budget / 1048576)) start_rss
    start_rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
    for mode in hot uniform zipf; do
      log "$name, $mib MiB: wrk $mode, $duration"
      local out
      case $mode in
        hot) out=$(wrk -t2 -c16 -d"$duration" --latency "$url/v2/bench.example/many-0/_trust/tuf/timestamp.json") ;;
        *) out=$(wrk -t2 -c16 -d"$duration" --latency -s "$work/$mode.lua" "$url") ;;
      esac
      local rps errors p50 p99
      read -r rps errors < <(wrk_figures <<<"$out")
      p50=$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$out")")
      p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
      local rss
      rss=$(awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
      rows+=("| $name | $mib | $mode | $rps | $p50 | $p99 | $errors | $rss |")
    done
    local hwm held
    hwm=$(awk '/^VmHWM:/ {printf "%.0f", $2 / 1024}' "/proc/$pid/status")
    held=$(curl -fsS "$url/metrics" | awk '/^notar_server_cache_bytes / {printf "%.0f", $2 / 1048576}')
    rows+=("| $name | $mib | RSS at start / peak (VmHWM) / cache bytes held | | | | | $start_rss / $hwm / $held |")
    stop_server
  done
}

for backend in $backends; do
  case $backend in
    sqlite) run_backend sqlite "" ;;
    postgres)
      if start_postgres; then run_backend postgres "$pg_url"
      else log "postgres: skipped (no PostgreSQL)"; fi ;;
    *) die "unknown backend $backend" ;;
  esac
done

cat <<REPORT
## $repos repositories

$(nproc) CPUs, release build, \`NOTAR_LOG=warn\`; reads once per \`--cache-bytes\` budget ($budgets).

### Filling

Each repository published once (root and targets uploaded, snapshot and timestamp signed by
the server, its two managed keys made), 8 at a time.

| backend | repositories | seconds | per second |
|---|---:|---:|---:|
$(printf '%s\n' "${fill_rows[@]}")

### GET timestamp.json

\`wrk -t2 -c16 -d$duration --latency\`: one hot repository, a uniform choice among all, and a
Zipf-like choice, on a server started afresh for each budget. RSS in MiB after each run.

| backend | budget MiB | reads | requests/s | p50 ms | p99 ms | errors | RSS MiB |
|---|---:|---|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")
REPORT
