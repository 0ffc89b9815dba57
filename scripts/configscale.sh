#!/usr/bin/env bash
# `strait run` on the 10,000-service configuration of issue #6: start to
# /ready, peak RSS at start, file write -> new snapshot live (the 150 ms
# debounce included), peak RSS across the reload, and the slowest request
# served meanwhile. Everything on loopback; every wait is bounded.
#
#   scripts/configscale.sh [BIN] [N] [RELOADS]
#
# Measures the `dist` profile (`cargo build --profile dist --bin strait --example scale`)
# unless BIN names another build; writes the N-service file with `examples/scale.rs`.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/dist/strait}
N=${2:-10000}
RELOADS=${3:-3}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$WORK"' EXIT
LISTEN=127.0.0.1:28105
ADMIN=127.0.0.1:28106

"$(dirname "$BIN")/examples/scale" write "$N" "$WORK/scale.yaml"
now() { date +%s%N; }
ms() { echo $(( ($2 - $1) / 1000000 )); }
hwm() { awk '/VmHWM/ {printf "%.1f", $2/1024}' "/proc/$1/status"; }
rss() { awk '/VmRSS/ {print int($2/1024)}' "/proc/$1/status"; }

t0=$(now)
RUST_LOG=info "$BIN" run -c "$WORK/scale.yaml" --listen "$LISTEN" --admin "$ADMIN" \
  --workers 1 >"$WORK/out.log" 2>&1 &
PID=$!
for _ in $(seq 3000); do
  curl -sf -o /dev/null "http://$ADMIN/ready" && break
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/out.log"; exit 1; }
  sleep 0.01
done
t1=$(now)
echo "start to /ready: $(ms "$t0" "$t1") ms; peak RSS at start: $(hwm "$PID") MiB; RSS now $(rss "$PID") MiB"

# Light traffic while reloading: one request at a time, slowest recorded.
( for _ in $(seq 100000); do
    curl -s -o /dev/null -w '%{time_total}\n' -H 'Host: svc1' "http://$LISTEN/" || true
    sleep 0.02
  done >"$WORK/lat.txt" ) &
TRAFFIC=$!

for r in $(seq "$RELOADS"); do
  before=$(grep -c 'configuration applied' "$WORK/out.log" || true)
  w=$((90 - r)); o=$((10 + r))
  # One VirtualService's weights change.
  awk -v w="$w" -v o="$o" '
    /name: svc5000}/ {hit=1}
    hit && /weight: [0-9]+}$/ && !done1 {sub(/weight: [0-9]+}$/, "weight: " w "}"); done1=1; print; next}
    hit && done1 && /weight: [0-9]+}$/ && !done2 {sub(/weight: [0-9]+}$/, "weight: " o "}"); done2=1; hit=0}
    {print}' "$WORK/scale.yaml" >"$WORK/next.yaml.tmp"
  tw=$(now)
  cat "$WORK/next.yaml.tmp" >"$WORK/scale.yaml"
  for _ in $(seq 3000); do
    [ "$(grep -c 'configuration applied' "$WORK/out.log" || true)" -gt "$before" ] && break
    grep -q 'rejected' "$WORK/out.log" && { grep rejected -B5 "$WORK/out.log"; exit 1; }
    sleep 0.01
  done
  ta=$(now)
  echo "reload $r: file write -> applied $(ms "$tw" "$ta") ms; peak RSS so far $(hwm "$PID") MiB; RSS now $(rss "$PID") MiB"
  grep 'configuration applied' "$WORK/out.log" | tail -1 | sed 's/\x1b\[[0-9;]*m//g' | grep -o 'build_ms.*' || true
  sleep 1
done
kill "$TRAFFIC" 2>/dev/null || true
wait "$TRAFFIC" 2>/dev/null || true
echo "requests during reloads: $(wc -l <"$WORK/lat.txt"), slowest $(sort -n "$WORK/lat.txt" | tail -1) s"
kill "$PID"; wait "$PID" 2>/dev/null || true
