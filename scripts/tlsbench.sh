#!/usr/bin/env bash
# HTTPS termination beside nginx and HAProxy (issue #13): the three proxies
# terminate TLS with the same ECDSA P-256 certificate and route to the bench
# backends of ../shared/bench (nginx, 1 KiB bodies), with one worker each.
#
#   scripts/tlsbench.sh STRAIT_BIN [cpu|instructions] [N]
#
# cpu (default): the proxy pinned to CPU 1, h2load and the backend on CPU 0;
#   full handshakes per second (N connections of one request each, 64 at a
#   time) and CPU per request on 8 kept-alive HTTP/1.1 connections; the
#   proxy's CPU time read from /proc (user + system), so the figures are the
#   proxy's own cost whoever is the bottleneck.
# instructions: the same two loads under callgrind (user-space instructions,
#   deterministic on a shared machine), per handshake and per request.
#
# PROTO=h2 makes the kept-alive load HTTP/2 by ALPN (4 connections of 10
# streams each, as scripts/instructions.sh's h2) instead of HTTP/1.1;
# PROXIES="strait" (default "nginx haproxy strait") runs only those; strait
# reads STRAIT_HTTP2_SERVER from the environment (`h2` for the h2 crate's).
#
# Needs nginx, haproxy, h2load (nghttp2-client), openssl, bc; valgrind for
# `instructions`. Loopback only; every load is bounded by its count.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
SHARED=${SHARED:-$HERE/../../shared}
CONF=$SHARED/bench/configs
BIN=$(realpath "$1")
MODE=${2:-cpu}
N=${3:-4000}
PROTO=${PROTO:-h1}
PROXIES=${PROXIES:-nginx haproxy strait}
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

mkdir -p "$WORK/run/tmp-backend-body" "$WORK/run/tmp-proxy-body" "$WORK/run/tmp-proxy-temp"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
  -subj /CN=bench.local -addext subjectAltName=DNS:bench.local \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
cat "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/combined.pem"

taskset -c 0 nginx -p "$WORK/run" -e "$WORK/run/backend.log" -c "$CONF/backend-nginx.conf" &
PIDS+=($!)

cat > "$WORK/nginx-tls.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
user root;
pid nginx-tls.pid;
error_log nginx-tls-error.log warn;
events { worker_connections 16384; multi_accept on; }
http {
    access_log off;
    server_tokens off;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    client_body_temp_path tmp-proxy-body;
    proxy_temp_path tmp-proxy-temp;
    ssl_session_cache off;
    ssl_session_tickets off;
    upstream split {
        server 127.0.0.1:28080 weight=9;
        server 127.0.0.1:28081 weight=1;
        keepalive 128;
    }
    server {
        listen 127.0.0.1:28101 ssl http2 backlog=4096;
        ssl_certificate $WORK/cert.pem;
        ssl_certificate_key $WORK/key.pem;
        location / {
            proxy_pass http://split;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
        }
    }
}
EOF

cat > "$WORK/haproxy-tls.cfg" <<EOF
global
    nbthread 1
    maxconn 8000
defaults
    mode http
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 300s
    option http-keep-alive
    http-reuse safe
frontend bench
    bind 127.0.0.1:28102 ssl crt $WORK/combined.pem alpn h2,http/1.1 no-tls-tickets backlog 4096
    default_backend split
backend split
    balance roundrobin
    server a 127.0.0.1:28080 weight 90
    server b 127.0.0.1:28081 weight 10
EOF

cp "$CONF/istio-routing.yaml" "$WORK/strait.yaml"
cat >> "$WORK/strait.yaml" <<EOF
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: { name: bench-https, namespace: default }
spec:
  selector: { istio: ingressgateway }
  servers:
  - port: { number: 443, name: https, protocol: HTTPS }
    hosts: ["bench.local"]
    tls: { mode: SIMPLE, serverCertificate: $WORK/cert.pem, privateKey: $WORK/key.pem }
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: { name: bench-gateway, namespace: default }
spec:
  hosts: ["bench.local"]
  gateways: [bench-https]
  http:
  - route:
    - destination: { host: bench.local, subset: v1 }
      weight: 90
    - destination: { host: bench.local, subset: v2 }
      weight: 10
EOF

ready() { # port
  for _ in $(seq 150); do
    curl -sk -o /dev/null --resolve "bench.local:$1:127.0.0.1" "https://bench.local:$1/" && return 0
    sleep 0.2
  done
  echo "proxy on $1 did not answer" >&2
  return 1
}
handshakes() { # port n: one request per connection, 64 connections at a time
  local done_n=0 batch
  while [ "$done_n" -lt "$2" ]; do
    batch=64
    taskset -c 0 h2load -t1 -c "$batch" -n "$batch" --h1 \
      --connect-to="127.0.0.1:$1" "https://bench.local:$1/" >/dev/null
    done_n=$((done_n + batch))
  done
  echo "$done_n"
}
kept_alive() { # port n
  local load=(-c8 --h1)
  if [ "$PROTO" = h2 ]; then load=(-c4 -m10); fi
  taskset -c 0 h2load -t1 "${load[@]}" -n "$2" --connect-to="127.0.0.1:$1" "https://bench.local:$1/" \
    | awk '/^requests:/ {print $8}'
}
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

measure_cpu() { # name port cmd...
  local name=$1 port=$2; shift 2
  ( cd "$WORK/run" && exec taskset -c 1 "$@" ) >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  ready "$port"
  kept_alive "$port" 1000 >/dev/null
  local t0 c0 n t1 c1 hs_rate hs_cpu rq_cpu
  t0=$(date +%s.%N); c0=$(cpu_ticks "$pid")
  n=$(handshakes "$port" "$N")
  t1=$(date +%s.%N); c1=$(cpu_ticks "$pid")
  hs_rate=$(echo "$n / ($t1 - $t0)" | bc -l)
  hs_cpu=$(echo "($c1 - $c0) / $hz / $n * 1000000" | bc -l)
  c0=$(cpu_ticks "$pid")
  n=$(kept_alive "$port" $((N * 25)))
  c1=$(cpu_ticks "$pid")
  rq_cpu=$(echo "($c1 - $c0) / $hz / $n * 1000000" | bc -l)
  # One core's capacity is 1 s of CPU over the CPU a handshake costs; the
  # measured rate is bounded by h2load starting a batch of 64 at a time.
  printf '%-8s CPU/handshake+request %6.1f us (one core: %5.0f/s; measured %5.0f/s)  CPU/kept-alive request %5.1f us  peak RSS %s\n' \
    "$name" "$hs_cpu" "$(echo "1000000 / $hs_cpu" | bc -l)" "$hs_rate" "$rq_cpu" "$(awk '/VmHWM/ {print $2 $3}' "/proc/$pid/status")"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

measure_instructions() { # name port cmd...
  local name=$1 port=$2; shift 2
  ( cd "$WORK/run" && exec valgrind --tool=callgrind --callgrind-out-file="$WORK/cg.$name.%p" "$@" ) >"$WORK/$name.log" 2>&1 &
  local pid=$!
  PIDS+=("$pid")
  ready "$port"
  kept_alive "$port" 200 >/dev/null
  local n per_hs per_rq
  # Each dump writes the counts since the last zero or dump to part N.
  part() { # N: that part's total instructions
    local f="$WORK/cg.$name.$pid.$1"
    for _ in $(seq 100); do [ -s "$f" ] && break; sleep 0.1; done
    sleep 0.5
    callgrind_annotate "$f" 2>/dev/null | awk '/PROGRAM TOTALS/ {gsub(",","",$1); print $1}'
  }
  callgrind_control -z "$pid" >/dev/null
  n=$(handshakes "$port" $((N / 10)))
  callgrind_control -d "$pid" >/dev/null
  per_hs=$(( $(part 1) / n ))
  n=$(kept_alive "$port" "$N")
  callgrind_control -d "$pid" >/dev/null
  per_rq=$(( $(part 2) / n ))
  echo "$name instructions per handshake+request: $per_hs, per kept-alive request: $per_rq"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run() {
  case " $PROXIES " in *" $1 "*) ;; *) return 0 ;; esac
  if [ "$MODE" = instructions ]; then measure_instructions "$@"; else measure_cpu "$@"; fi
}
run nginx 28101 nginx -p "$WORK/run" -e "$WORK/run/nginx-tls.log" -c "$WORK/nginx-tls.conf"
run haproxy 28102 haproxy -db -f "$WORK/haproxy-tls.cfg"
run strait 28103 "$BIN" run --config "$WORK/strait.yaml" --listen 127.0.0.1:28104 --admin 127.0.0.1:28119 \
  --workers 1 --gateway --labels istio=ingressgateway --gateway-port 443=28103
