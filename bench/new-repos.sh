#!/usr/bin/env bash
# What a new repository costs the server: the first GET …/timestamp.key of a GUN makes and
# stores its managed key. Times N such GETs (each a new GUN) on one keep-alive connection,
# and reads the server's peak RSS. Prints a markdown report on stdout.
#
# Environment (all optional):
#   NOTAR_BENCH_REPOS       new GUNs per server (default 2000)
#   NOTAR_BENCH_BEFORE_BIN  another notar-server binary to measure in the same run, such as
#                           a release build of an older commit (shown as "before")
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

repos=${NOTAR_BENCH_REPOS:-2000}
need_tools cargo curl python3
build_release

work=$(mktemp -d /tmp/notar-bench.XXXXXX)
pid=
cleanup() {
  [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

rows=()
measure() {
  local name=$1 bin=$2 port
  port=$(free_port)
  mkdir -p "$work/$name"
  NOTAR_SERVER_SECRET=bench-secret NOTAR_LOG=warn "$bin" --listen "127.0.0.1:$port" \
    --data-dir "$work/$name" >"$work/$name.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 100); do
    [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/v2/")" = 200 ] && break
    sleep 0.1
  done
  log "$name: $repos new repositories"
  local figures
  figures=$(python3 - "$port" "$repos" "$name" <<'PY'
import http.client, statistics, sys, time
port, n, name = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
conn = http.client.HTTPConnection("127.0.0.1", port)
times = []
started = time.perf_counter()
for i in range(n):
    t = time.perf_counter()
    conn.request("GET", f"/v2/bench.example/{name}/repo-{i}/_trust/tuf/timestamp.key")
    r = conn.getresponse()
    r.read()
    if r.status != 200:
        sys.exit(f"GET timestamp.key: {r.status}")
    times.append((time.perf_counter() - t) * 1000)
total = time.perf_counter() - started
times.sort()
print(f"{statistics.median(times):.3f} {times[int(len(times) * 0.9)]:.3f} {times[-1]:.2f} {total:.2f}")
PY
)
  local hwm
  hwm=$(awk '/^VmHWM:/ {printf "%.1f", $2 / 1024}' "/proc/$pid/status")
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
  read -r median p90 max total <<<"$figures"
  rows+=("| $name | $median | $p90 | $max | $total | $hwm |")
}

[ -z "${NOTAR_BENCH_BEFORE_BIN:-}" ] || measure before "$NOTAR_BENCH_BEFORE_BIN"
measure notar "$server_bin"

cat <<REPORT
## A new repository's cost to the server

$(nproc) CPUs, SQLite, release build. $repos first \`GET …/timestamp.key\` requests, each for
a new GUN, one after another on one keep-alive connection (ms), the time for all of them
(s), and the server's peak RSS (VmHWM, MiB).

| server | median | p90 | max | all $repos (s) | peak RSS |
|---|---:|---:|---:|---:|---:|
$(printf '%s\n' "${rows[@]}")
REPORT
