#!/usr/bin/env bash
# The web view's repository page for a repository of 10,000 signed tags: how long a viewer
# waits for it. Prints a markdown report on stdout; progress goes to stderr. See
# bench/README.md.
#
# Environment (all optional):
#   NOTAR_BENCH_UI_TAGS      tags in the repository (default 10000)
#   NOTAR_BENCH_UI_REQUESTS  timed requests of each page (default 30)
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

tags=${NOTAR_BENCH_UI_TAGS:-10000}
requests=${NOTAR_BENCH_UI_REQUESTS:-30}
gun=bench.example/ui

need_tools cargo curl python3

build_release

work=$(mktemp -d /tmp/notar-bench-ui.XXXXXX)
server_pid=
cleanup() {
  if [ -n "$server_pid" ]; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

port=$(free_port)
url=http://127.0.0.1:$port
log "starting notar-server (SQLite)"
NOTAR_SERVER_SECRET=bench-secret NOTAR_LOG=warn "$server_bin" --listen "127.0.0.1:$port" \
  --data-dir "$work/data" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 100); do
  curl -sf -o /dev/null "$url/v2/" && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.log" >&2; die "the server exited"; }
  sleep 0.1
done

# Root and targets v1 with every tag, then one more targets version, so the page dates
# the tags over two versions.
log "publishing $gun with $tags tags"
"$publish_bin" --server "$url" --gun "$gun" --targets "$tags" --publishes 1 >/dev/null

# Seconds (curl's time_total) of one GET, in milliseconds.
get_ms() {
  curl -sf -o /dev/null -w '%{time_total}\n' "$1" | awk '{printf "%.2f", $1 * 1000}'
}

page=$url/ui/r/$gun
first=$(get_ms "$page")
bytes=$(curl -sf -o /dev/null -w '%{size_download}' "$page")
rows=$(curl -sf "$page" | grep -o '<tr' | wc -l)
[ "$rows" -gt "$tags" ] || die "the page shows $rows table rows, fewer than $tags tags"

rows_out=()
for name in "repository page:$page" "targets.json:$url/v2/$gun/_trust/tuf/targets.json" \
  "repository list:$url/ui/"; do
  label=${name%%:http*}
  target=${name#"$label":}
  log "$label: $requests requests"
  times=()
  for _ in $(seq 1 "$requests"); do times+=("$(get_ms "$target")"); done
  size=$(curl -sf -o /dev/null -w '%{size_download}' "$target")
  sorted=$(printf '%s\n' "${times[@]}" | sort -n)
  p90=$(awk -v n="$requests" 'NR == int(n * 0.9 + 0.5) {print}' <<<"$sorted")
  rows_out+=("| $label | $(median "${times[@]}") | $p90 | $(head -n 1 <<<"$sorted") | $size |")
done
rss=$(awk '/^VmRSS:/ {printf "%.1f", $2 / 1024}' "/proc/$server_pid/status")

cat <<EOF
### The web view, $tags tags ($(nproc) vCPUs, SQLite, release build)

First request of the repository page (verified walk, signing-time walk, render): $first ms,
$bytes bytes, $rows table rows.

| page | median ms | p90 ms | min ms | bytes |
|---|---:|---:|---:|---:|
$(printf '%s\n' "${rows_out[@]}")

Server VmRSS after the requests: $rss MiB.
EOF
