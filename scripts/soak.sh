#!/usr/bin/env bash
# Soak test for strait (reliability.md §5, RELIABILITY.md "Soak"): sustained
# mixed HTTP/1.1, h2c and gRPC load on loopback while the configuration is
# rewritten every few seconds (weights flip), one endpoint is killed and
# restarted periodically, and a VirtualService fault aborts half of one path.
# Samples the proxy's RSS every second and checks that the admin counters
# account for every request. Not part of `cargo test`.
#
#   scripts/soak.sh                 # 5 minutes
#   SOAK_SECS=60 scripts/soak.sh    # shorter
#   SOAK_PROFILE=dev scripts/soak.sh  # debug build (quick check of the script)
#
# Needs wrk and h2load (Debian: wrk, nghttp2-client) and python3 (free ports).
set -euo pipefail

SOAK_SECS=${SOAK_SECS:-300}
SOAK_PROFILE=${SOAK_PROFILE:-release}
FLIP_EVERY=${FLIP_EVERY:-5}
KILL_EVERY=${KILL_EVERY:-20}
KILL_DOWN=${KILL_DOWN:-3}

cd "$(dirname "$0")/.."
for tool in wrk h2load python3 curl; do
  command -v "$tool" >/dev/null || { echo "soak: $tool is missing; install it (Debian: apt-get install wrk nghttp2-client python3 curl)" >&2; exit 2; }
done

if [ "$SOAK_PROFILE" = release ]; then
  cargo build --release --bin strait --example soak_upstream --example soak_client
  BIN=target/release
else
  cargo build --bin strait --example soak_upstream --example soak_client
  BIN=target/debug
fi

WORK=$(mktemp -d)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  [ -n "${F2_PID:-}" ] && kill "$F2_PID" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

# Free loopback ports: proxy, admin, v1, v2, g1, f1, f2.
read -r P_PROXY P_ADMIN P_V1 P_V2 P_G1 P_F1 P_F2 < <(python3 - <<'EOF'
import socket
socks = [socket.socket() for _ in range(7)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
)

start_upstream() { # port name
  "$BIN/examples/soak_upstream" "127.0.0.1:$1" "$2" &
}
start_upstream "$P_V1" v1; PIDS+=($!)
start_upstream "$P_V2" v2; PIDS+=($!)
start_upstream "$P_G1" g1; PIDS+=($!)
start_upstream "$P_F1" f1; PIDS+=($!)
start_upstream "$P_F2" f2; F2_PID=$!

CONF="$WORK/config"
mkdir -p "$CONF"
cat > "$CONF/services.yaml" <<EOF
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: web}
spec:
  hosts: [web.soak]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: $P_V1}, labels: {version: v1}}
  - {address: 127.0.0.1, ports: {http: $P_V2}, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web.soak
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: grpc}
spec:
  hosts: [grpc.soak]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: grpc, protocol: GRPC}]
  endpoints:
  - {address: 127.0.0.1, ports: {grpc: $P_G1}}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: flap}
spec:
  hosts: [flap.soak]
  location: MESH_INTERNAL
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints:
  - {address: 127.0.0.1, ports: {http: $P_F1}}
  - {address: 127.0.0.1, ports: {http: $P_F2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: flap}
spec:
  host: flap.soak
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
EOF

write_vs() { # weight of v1 (v2 gets the rest)
  cat > "$CONF/.vs.tmp" <<EOF
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web.soak]
  http:
  - name: fault
    match: [{uri: {prefix: /fault}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 50}}}
    route: [{destination: {host: web.soak, subset: v1}}]
  - name: split
    route:
    - {destination: {host: web.soak, subset: v1}, weight: $1}
    - {destination: {host: web.soak, subset: v2}, weight: $((100 - $1))}
EOF
  mv "$CONF/.vs.tmp" "$CONF/web-vs.yaml"
}
write_vs 90

"$BIN/strait" run --config "$CONF" --listen "127.0.0.1:$P_PROXY" --admin "127.0.0.1:$P_ADMIN" \
  --drain-timeout 2s 2> "$WORK/strait.log" &
STRAIT_PID=$!
PIDS+=($STRAIT_PID)
for _ in $(seq 1 200); do
  curl -fsS "http://127.0.0.1:$P_ADMIN/ready" >/dev/null 2>&1 && break
  sleep 0.05
done
curl -fsS "http://127.0.0.1:$P_ADMIN/ready" >/dev/null || { echo "soak: strait did not become ready; see its log:" >&2; cat "$WORK/strait.log" >&2; exit 1; }
for p in $P_V1 $P_V2 $P_G1 $P_F1 $P_F2; do
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && break; sleep 0.05; done
done
echo "soak: strait pid $STRAIT_PID on 127.0.0.1:$P_PROXY (admin $P_ADMIN), ${SOAK_SECS}s, profile $SOAK_PROFILE"

# RSS sampler: "seconds-since-start rss_kb" every second.
(
  t=0
  while kill -0 "$STRAIT_PID" 2>/dev/null && [ "$t" -le $((SOAK_SECS + 5)) ]; do
    awk -v t="$t" '/^VmRSS:/ {print t, $2}' "/proc/$STRAIT_PID/status" 2>/dev/null || true
    sleep 1
    t=$((t + 1))
  done
) > "$WORK/rss.txt" &
PIDS+=($!)

# Config flipper: weights 90/10 <-> 10/90 every FLIP_EVERY seconds.
(
  w=10
  end=$((SECONDS + SOAK_SECS))
  while [ "$SECONDS" -lt "$end" ]; do
    sleep "$FLIP_EVERY"
    write_vs "$w"
    w=$((100 - w))
  done
) &
PIDS+=($!)

# Killer: every KILL_EVERY seconds kill f2, record the time (epoch ms),
# restart it KILL_DOWN seconds later on the same port.
: > "$WORK/kills.txt"
(
  end=$((SECONDS + SOAK_SECS - KILL_EVERY))
  pid=$F2_PID
  while [ "$SECONDS" -lt "$end" ]; do
    sleep "$KILL_EVERY"
    date +%s%3N >> "$WORK/kills.txt"
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    sleep "$KILL_DOWN"
    "$BIN/examples/soak_upstream" "127.0.0.1:$P_F2" f2 &
    pid=$!
    echo "$pid" > "$WORK/f2.pid"
  done
  # Leave the last f2 running until cleanup.
  wait "$pid" 2>/dev/null || true
) &
KILLER=$!
PIDS+=($KILLER)

# Load: the Rust client (HTTP/1.1, h2c, gRPC, fault and flap paths) plus wrk
# (HTTP/1.1) and h2load (h2c) on the /ok path.
wrk -t1 -c4 -d "${SOAK_SECS}s" -H "Host: web.soak" "http://127.0.0.1:$P_PROXY/ok" > "$WORK/wrk.txt" 2>&1 &
WRK=$!
h2load -c2 -m4 -D "$SOAK_SECS" -H ":authority: web.soak" "http://127.0.0.1:$P_PROXY/ok" > "$WORK/h2load.txt" 2>&1 &
H2LOAD=$!
"$BIN/examples/soak_client" --proxy "127.0.0.1:$P_PROXY" --secs "$SOAK_SECS" --concurrency 8 \
  --kills "$WORK/kills.txt" > "$WORK/client.txt"
wait "$WRK" || true
wait "$H2LOAD" || true
[ -f "$WORK/f2.pid" ] && kill "$(cat "$WORK/f2.pid")" 2>/dev/null || true
kill "$KILLER" 2>/dev/null || true
sleep 1

STATS=$(curl -fsS "http://127.0.0.1:$P_ADMIN/stats/prometheus")
PROXY_TOTAL=$(echo "$STATS" | awk '/^istio_requests_total\{/ {s += $NF} END {printf "%d", s}')
PROXY_BY_CODE=$(echo "$STATS" | awk '/^istio_requests_total\{/ {match($0, /response_code="[0-9]+"/); c = substr($0, RSTART + 15, RLENGTH - 16); match($0, /response_flags="[^"]*"/); f = substr($0, RSTART + 16, RLENGTH - 17); s[c " " f] += $NF} END {for (k in s) printf "  %s: %d\n", k, s[k]}' | sort)
REJECTED=$(echo "$STATS" | awk '/^strait_config_update_rejected_total/ {print $NF}')

get() { awk -F= -v k="$1" '$1 == k {print $2}' "$WORK/client.txt"; }
C_SENT=$(get sent); C_OK=$(get succeeded); C_EXP=$(get expected_failures); C_BAD=$(get unexpected_failures)
WRK_TOTAL=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
WRK_NON2XX=$(awk '/Non-2xx/ {print $NF}' "$WORK/wrk.txt")
WRK_SOCKERR=$(awk '/Socket errors/ {gsub(",", ""); print $4 + $6 + $8 + $10}' "$WORK/wrk.txt")
H2_LINE=$(grep '^requests:' "$WORK/h2load.txt" || true)
# "requests: N total, N started, N done, N succeeded, N failed, N errored, N timeout"
H2_STARTED=$(echo "$H2_LINE" | awk '{print $4}')
H2_DONE=$(echo "$H2_LINE" | awk '{print $6}')
H2_OK=$(echo "$H2_LINE" | awk '{print $8}')
H2_FAILED=$(echo "$H2_LINE" | awk '{print $10 + $12 + $14}')
WRK_TOTAL=${WRK_TOTAL:-0}; WRK_NON2XX=${WRK_NON2XX:-0}; WRK_SOCKERR=${WRK_SOCKERR:-0}
H2_DONE=${H2_DONE:-0}; H2_OK=${H2_OK:-0}; H2_FAILED=${H2_FAILED:-0}; H2_STARTED=${H2_STARTED:-0}
CLIENT_TOTAL=$((C_SENT + WRK_TOTAL + H2_DONE))
# wrk and h2load stop with requests in flight (at most 4 and 2x4): the proxy
# counts those too (as DC), the tools do not.
IN_FLIGHT_MAX=$((4 + 2 * 4))

RSS_SUMMARY=$(awk -v secs="$SOAK_SECS" '
  { t[NR] = $1; r[NR] = $2; n = NR }
  END {
    if (n < 2) { print "rss: too few samples"; exit }
    w = (secs >= 120) ? 60 : int(n / 3); if (w < 1) w = 1
    for (i = 1; i <= w; i++) first += r[i]
    for (i = n - w + 1; i <= n; i++) last += r[i]
    for (i = 1; i <= n; i++) { sx += t[i]; sy += r[i]; sxx += t[i] * t[i]; sxy += t[i] * r[i] }
    slope = (n * sxy - sx * sy) / (n * sxx - sx * sx)
    max = 0; for (i = 1; i <= n; i++) if (r[i] > max) max = r[i]
    printf "rss_first_window_avg_kb=%.0f\nrss_last_window_avg_kb=%.0f\nrss_window_secs=%d\nrss_max_kb=%d\nrss_slope_kb_per_min=%.1f\nrss_samples=%d\n", first / w, last / w, w, max, slope * 60, n
  }' "$WORK/rss.txt")

echo
echo "== soak result (${SOAK_SECS}s, $(nproc) cores shared, profile $SOAK_PROFILE) =="
cat "$WORK/client.txt"
echo "wrk_requests=$WRK_TOTAL wrk_non2xx=$WRK_NON2XX wrk_socket_errors=$WRK_SOCKERR"
echo "h2load_started=$H2_STARTED h2load_done=$H2_DONE h2load_succeeded=$H2_OK h2load_failed=$H2_FAILED"
echo "kills=$(wc -l < "$WORK/kills.txt") config_writes=$((SOAK_SECS / FLIP_EVERY)) config_rejections=${REJECTED:-n/a}"
echo "requests_sent_total=$CLIENT_TOTAL"
echo "requests_succeeded_total=$((C_OK + WRK_TOTAL - WRK_NON2XX + H2_OK))"
echo "failed_that_should_have_succeeded=$((C_BAD + WRK_NON2XX + WRK_SOCKERR + H2_FAILED))"
echo "expected_failures=$C_EXP"
echo "istio_requests_total=$PROXY_TOTAL (tools' in-flight at stop: up to $IN_FLIGHT_MAX more)"
echo "istio_requests_total by response_code and flags:"
echo "$PROXY_BY_CODE"
DIFF=$((PROXY_TOTAL - CLIENT_TOTAL))
if [ "$DIFF" -ge 0 ] && [ "$DIFF" -le "$IN_FLIGHT_MAX" ]; then
  echo "accounting=ok (proxy counted $DIFF more than the clients finished)"
else
  echo "accounting=MISMATCH (proxy - clients = $DIFF)"
fi
echo "$RSS_SUMMARY"
echo "strait log lines: $(wc -l < "$WORK/strait.log") (warnings: $(grep -c WARN "$WORK/strait.log" || true))"
