#!/usr/bin/env bash
# Read throughput of one notar-server against three sharing one PostgreSQL, as behind a
# load balancer. Prints a markdown report on stdout; progress goes to stderr. See
# bench/README.md.
#
# Environment (all optional):
#   NOTAR_BENCH_POSTGRES_URL  a PostgreSQL database to use; without it a throw-away cluster
#                             is started on loopback
#   NOTAR_BENCH_DURATION      length of each wrk run (default 10s)
#   NOTAR_BENCH_ROUNDS        alternating 1-server / 3-server rounds (default 3; medians)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

duration=${NOTAR_BENCH_DURATION:-10s}
rounds=${NOTAR_BENCH_ROUNDS:-3}
gun=bench.example/app-1000
connections=18          # in all: 18 on one server, or 6 on each of three
files=(timestamp.json targets.json)

need_tools cargo wrk curl python3

build_release

work=$(mktemp -d /tmp/notar-bench.XXXXXX)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  stop_postgres
  rm -rf "$work"
}
trap cleanup EXIT

start_postgres || die "no PostgreSQL: set NOTAR_BENCH_POSTGRES_URL or install postgresql"

urls=()
for i in 0 1 2; do
  port=$(free_port)
  NOTAR_SERVER_SECRET=bench-secret NOTAR_LOG=warn "$server_bin" --listen "127.0.0.1:$port" \
    --data-dir "$work/data-$i" --database "$pg_url" >"$work/server-$i.log" 2>&1 &
  pids+=($!)
  urls+=("http://127.0.0.1:$port")
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "${urls[$i]}/v2/")" = 200 ] && break
    sleep 0.1
  done
done
log "publishing $gun (1,000 targets)"
"$publish_bin" --server "${urls[0]}" --gun "$gun" --targets 1000 --publishes 1 >/dev/null

# Requests/s of wrk runs started at once, one per URL given, $connections split evenly.
parallel_rps() {
  local file=$1; shift
  local per=$((connections / $#)) outs=() i=0 url
  for url in "$@"; do
    wrk -t1 -c"$per" -d"$duration" "$url/v2/$gun/_trust/tuf/$file" >"$work/wrk-$i.out" 2>&1 &
    outs+=("$work/wrk-$i.out")
    i=$((i + 1))
  done
  wait_wrk
  local total=0 errors=0 rps err out
  for out in "${outs[@]}"; do
    read -r rps err < <(wrk_figures <"$out")
    total=$((total + rps))
    errors=$((errors + err))
  done
  echo "$total $errors"
}
# Waits for the wrk runs only (the servers are background jobs too).
wait_wrk() {
  local pid
  for pid in $(jobs -p); do
    case " ${pids[*]} " in *" $pid "*) ;; *) wait "$pid" ;; esac
  done
}

rows=()
for file in "${files[@]}"; do
  one=() three=() errors=0
  for round in $(seq 1 "$rounds"); do
    log "$file round $round: one server"
    read -r rps err < <(parallel_rps "$file" "${urls[0]}")
    one+=("$rps"); errors=$((errors + err))
    log "$file round $round: three servers"
    read -r rps err < <(parallel_rps "$file" "${urls[@]}")
    three+=("$rps"); errors=$((errors + err))
  done
  m1=$(median "${one[@]}")
  m3=$(median "${three[@]}")
  ratio=$(awk -v a="$m3" -v b="$m1" 'BEGIN {printf "%.2f", a / b}')
  rows+=("| $file | $m1 | $m3 | $ratio | $errors |")
done

cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
cat <<REPORT
## One notar-server against three on one PostgreSQL

$(nproc) CPUs ($cpu), shared by the servers, PostgreSQL and wrk. Release build,
\`NOTAR_LOG=warn\`, default cache TTL (2 s). $connections connections in all: \`wrk -t1
-c$connections\` on one server, or \`wrk -t1 -c$((connections / 3))\` on each of three at
once (the sum is reported). Medians of $rounds alternating rounds of $duration.

| file | one server (req/s) | three servers (req/s) | three / one | errors |
|---|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")
REPORT
