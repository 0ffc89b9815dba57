#!/usr/bin/env bash
# User and system CPU per proxied HTTP/1.1 request at saturation, for one
# proxy: where a request's CPU goes, the process's own code or the kernel
# (system calls, loopback TCP, wake-ups). peers.sh reports their sum.
#
#   scripts/cpusplit.sh nginx|haproxy|strait|floor [BIN] [SECONDS]
#
# BIN is strait's binary (default target/dist/strait) or the floor's
# (scripts/floor, default scripts/floor/target/release/floor). As in
# ../shared/bench/peers.sh: the backend (nginx, 127.0.0.1:28080) and wrk
# (-t1 -c64) on CPU 0, the proxy with one worker on CPU 1; utime and stime
# of the proxy's process from /proc/PID/stat over a SECONDS-long run (default
# 5) after a 2 s warm-up. Everything on loopback, bounded in time.
set -euo pipefail
cd "$(dirname "$0")/.."
WHO=$1
DUR=${3:-5}
CONF=$(realpath ../shared/bench/configs)
RUN=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$RUN"' EXIT

taskset -c 0 nginx -p "$RUN" -e "$RUN/backend.log" -c "$CONF/backend-nginx.conf" &
case $WHO in
  nginx)
    taskset -c 1 nginx -p "$RUN" -e "$RUN/proxy.log" -g 'worker_processes 1;' -c "$CONF/nginx-proxy.conf" &
    PORT=28001 ;;
  haproxy)
    BENCH_WORKERS=1 taskset -c 1 haproxy -db -f "$CONF/haproxy.cfg" >"$RUN/proxy.log" 2>&1 &
    PORT=28002 ;;
  strait|floor)
    if [ "$WHO" = strait ]; then BIN=${2:-target/dist/strait}; else BIN=${2:-scripts/floor/target/release/floor}; fi
    taskset -c 1 "$BIN" run --config "$CONF/istio-routing.yaml" --listen 127.0.0.1:28005 \
      --admin 127.0.0.1:28019 --workers 1 >"$RUN/proxy.log" 2>&1 &
    PORT=28005 ;;
  *) echo "usage: $0 nginx|haproxy|strait|floor [BIN] [SECONDS]" >&2; exit 2 ;;
esac
for _ in $(seq 100); do
  curl -s -o /dev/null -H 'Host: bench.local' "http://127.0.0.1:$PORT/" && break
  sleep 0.1
done
case $WHO in
  nginx) PID=$(pgrep -P "$(cat "$RUN/nginx-proxy.pid")") ;;
  haproxy) PID=$(pgrep -n -x haproxy) ;;
  *) PID=$(jobs -p | tail -n 1) ;;
esac
taskset -c 0 wrk -t1 -c64 -d2s -H 'Host: bench.local' "http://127.0.0.1:$PORT/" >/dev/null
read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$PID/stat")
out=$(taskset -c 0 wrk -t1 -c64 -d"${DUR}s" -H 'Host: bench.local' "http://127.0.0.1:$PORT/")
read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$PID/stat")
n=$(echo "$out" | awk '/requests in/ {print $1}')
hz=$(getconf CLK_TCK)
awk -v w="$WHO" -v n="$n" -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" 'BEGIN {
  printf "%s: %d requests; CPU us per request: user %.2f, system %.2f, total %.2f\n",
    w, n, u / hz * 1e6 / n, s / hz * 1e6 / n, (u + s) / hz * 1e6 / n }'
