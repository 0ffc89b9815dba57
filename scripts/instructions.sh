#!/usr/bin/env bash
# User-space instructions per proxied request, counted by callgrind: a
# deterministic measure for A/B comparisons on a shared machine (wall-clock
# and CPU time move ±20 % there, and VMs often have no hardware counters).
#
#   scripts/instructions.sh [BIN] [h1|h2] [N]
#
# Needs valgrind, h2load (nghttp2-client) and nginx. Starts the bench
# backends of ../shared/bench (nginx on 127.0.0.1:28080/28081) unless they
# run, then strait under callgrind on 127.0.0.1:28005 with the bench routing;
# warms up with 400 requests, counts N (default 3000) and prints the total
# instructions divided by N (KEEP=DIR keeps the profile). Everything is on loopback and bounded by N.
# Measures the `dist` profile (fat LTO, one codegen unit: `cargo build --profile dist`)
# unless BIN names another build.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/dist/strait}
MODE=${2:-h1}
N=${3:-3000}
SHARED=../shared/bench
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT

if ! (exec 3<>/dev/tcp/127.0.0.1/28080) 2>/dev/null; then
  mkdir -p "$WORK/nginx/tmp-backend-body"
  nginx -p "$WORK/nginx" -e "$WORK/nginx/err.log" -c "$(realpath $SHARED/configs/backend-nginx.conf)" &
  sleep 1
fi

valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.%p" "$BIN" run \
  --config "$SHARED/configs/istio-routing.yaml" --listen 127.0.0.1:28005 \
  --admin 127.0.0.1:28021 --workers 1 >"$WORK/strait.log" 2>&1 &
PID=$!
for _ in $(seq 100); do
  curl -s -o /dev/null -H 'Host: bench.local' http://127.0.0.1:28005/ && break
  sleep 0.2
done
load() {
  if [ "$MODE" = h1 ]; then
    h2load -t1 -c8 -n "$1" --h1 -H ':authority: bench.local' http://127.0.0.1:28005/
  else
    h2load -t1 -c4 -m10 -n "$1" -H ':authority: bench.local' http://127.0.0.1:28005/
  fi
}
load 400 >/dev/null
callgrind_control -z "$PID" >/dev/null
load "$N" | grep '^requests:'
callgrind_control -d "$PID" >/dev/null
sleep 0.5
kill "$PID"; wait "$PID" 2>/dev/null || true
total=$(callgrind_annotate "$WORK"/cg.*.1 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}')
echo "$MODE instructions/request: $((total / N))"
# KEEP=DIR keeps the callgrind profile for callgrind_annotate.
if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$WORK"/cg.*.1 "$KEEP/"; fi
