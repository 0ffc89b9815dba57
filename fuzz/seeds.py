#!/usr/bin/env python3
"""Write the seed inputs of the three fuzz targets to fuzz/seeds/<target>/.

Seeds are starting points, not the corpus: `cargo fuzz run` grows a corpus
from them and `cargo fuzz cmin` keeps what adds coverage (fuzz/README.md).
Config seeds are the repository's example configs and Istio's analyzer test
inputs (../shared/conformance/istio-analyzer/); HTTP seeds are realistic
requests for the built-in mesh (src/fuzzing/mesh.yaml) and the request
smuggling shapes of reliability.md cases 9-13.
"""

import hashlib
import pathlib
import shutil
import sys

FUZZ = pathlib.Path(__file__).resolve().parent
ROOT = FUZZ.parent
SHARED = ROOT.parent / "shared" / "conformance" / "istio-analyzer"
OUT = FUZZ / "seeds"


def write(target, data):
    if isinstance(data, str):
        data = data.encode()
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    (d / hashlib.sha1(data).hexdigest()).write_bytes(data)


def config_seeds():
    files = sorted((ROOT / "examples").rglob("*.yaml"))
    files += sorted((ROOT / "tests" / "data").rglob("*.yaml"))
    files += sorted(SHARED.rglob("*.yaml")) if SHARED.exists() else []
    if not SHARED.exists():
        print(f"note: {SHARED} not found; config seeds without Istio's cases", file=sys.stderr)
    for f in files:
        write("config", f.read_bytes())
    write("config", (ROOT / "src" / "fuzzing" / "mesh.yaml").read_text().replace("__PORT__", "9080"))
    # YAML shapes the loader bounds (reliability case 27), kept small.
    write("config", 'a: &a ["x","x"]\nb: &b [*a,*a]\nc: &c [*b,*b]\nd: [*c,*c]\n')
    write("config", "spec: " + "[" * 200 + "]" * 200 + "\n")
    write("config", "spec:\n" + "".join("  " * i + "a:\n" for i in range(1, 60)))
    write("config", """apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: VirtualService
  metadata: {name: r}
  spec:
    hosts: [r]
    http:
    - match: [{uri: {regex: "(a+)+$"}, queryParams: {q: {regex: "[[:alpha:]]{2,}"}}}]
      route: [{destination: {host: r, port: {number: 0x50}}, weight: 0o12}]
      timeout: 1h2m3.5s
      retries: {attempts: -1, perTryTimeout: 1.5ms, retryOn: "5xx,reset,retriable-4xx,418"}
""")
    write("config", """---
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: &m {name: d, namespace: other, labels: {app: x}}
spec:
  host: "*.svc.cluster.local"
  exportTo: [".", "*", "~"]
  trafficPolicy: &tp
    loadBalancer:
      localityLbSetting:
        enabled: yes
        failover: [{from: us-east, to: us-west}]
        failoverPriority: [topology.kubernetes.io/region, "version=v1"]
        distribute: [{from: "us/east/*", to: {"us/east/*": 80, "us/west/*": 20}}]
    outlierDetection: {consecutive5xxErrors: 1, interval: 1s, baseEjectionTime: 30s, maxEjectionPercent: 100}
    tls: {mode: SIMPLE, sni: x, subjectAltNames: [a], insecureSkipVerify: on}
  subsets:
  - {name: s, labels: {v: "1"}, trafficPolicy: *tp}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: w}
spec: {address: 10.0.0.1, ports: {http: 8080}, labels: {app: x}, locality: us-east/a/b, weight: 5, network: n}
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: s}
spec:
  hosts: [x.example.com]
  addresses: [10.1.0.0/16]
  ports: [{number: 443, name: tls, protocol: TLS}, {number: 80, name: h, protocol: HTTP2}]
  resolution: DNS
  workloadSelector: {labels: {app: x}}
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: g}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    hosts: ["ns/*.example.com"]
    tls: {mode: SIMPLE, credentialName: c}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default}
spec:
  egress: [{hosts: ["./*", "istio-system/*"]}]
  outboundTrafficPolicy: {mode: REGISTRY_ONLY}
""")
    write("config", '{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"j"},'
                    '"spec":{"hosts":["j"],"http":[{"delegate":{"name":"d","namespace":"x"}}]}}')


# Realistic requests for the built-in mesh: one per route of
# src/fuzzing/mesh.yaml, and the parts of the request path around them.
REQUESTS = [
    ("GET", "/", ["Host: shop"]),
    ("GET", "/old/path?x=1", ["Host: shop"]),
    ("GET", "/moved", ["Host: shop:8080"]),
    ("GET", "/healthz", ["Host: shop.default.svc.cluster.local"]),
    ("GET", "/ready12", ["Host: shop.default"]),
    ("GET", "/?tea", ["Host: shop"]),
    ("GET", "/", ["Host: shop", "x-fault: abort"]),
    ("GET", "/", ["Host: shop", "x-fault: grpc", "content-type: application/grpc"]),
    ("GET", "/", ["Host: shop", "x-fault: delay"]),
    ("GET", "/", ["Host: shop", "x-canary: true", "end-user: jason", "x-debug: 1"]),
    ("GET", "/", ["Host: shop", "Cookie: a=b; canary=1; session=abc"]),
    ("GET", "/?user=bob", ["Host: shop", "x-user: alice"]),
    ("PATCH", "/Api/orders", ["Host: shop", "Content-Length: 5"], "hello"),
    ("GET", "/users/bob/profile", ["Host: shop"]),
    ("OPTIONS", "/cors", ["Host: shop", "Origin: https://a.example", "Access-Control-Request-Method: POST"]),
    ("OPTIONS", "/cors", ["Host: shop", "Origin: https://evil.example", "Access-Control-Request-Method: GET"]),
    ("GET", "/cors/x", ["Host: shop", "Origin: https://x.b.example"]),
    ("GET", "/mirror", ["Host: shop"]),
    ("GET", "/status/503", ["Host: shop"]),
    ("GET", "/status/500", ["Host: shop"]),
    ("GET", "/nc", ["Host: shop"]),
    ("DELETE", "/items/1", ["Host: shop"]),
    ("GET", "http://shop:8080/a?b=c", []),
    ("GET", "http://x.example.com/x", []),
    ("GET", "/", ["Host: api.example.com"]),
    ("GET", "/", ["Host: unknown.example.net"]),
    ("POST", "/pkg.Svc/Method", ["Host: shop:9090", "content-type: application/grpc", "te: trailers", "Content-Length: 5"], "\x00\x00\x00\x00\x00"),
    ("GET", "/", ["Host: [::1]:80"]),
    ("GET", "/", ["Host: SHOP:80", "X-Request-Id: 1", "X-Forwarded-For: 1.2.3.4", "User-Agent: fuzz"]),
]


def head(method, target, headers, body=""):
    lines = [f"{method} {target} HTTP/1.1"] + headers
    return "\r\n".join(lines) + "\r\n\r\n" + body


def http_seeds():
    for r in REQUESTS:
        write("http1", head(*r))
    h = "Host: shop\r\n"
    raw = [
        # Pipelined, keep-alive and close.
        head("GET", "/", ["Host: shop"]) + head("GET", "/healthz", ["Host: shop", "Connection: close"]),
        "GET / HTTP/1.0\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
        "GET /\r\n",
        f"POST /mirror HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: t\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Expect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        # Smuggling shapes (reliability cases 10-13).
        f"POST / HTTP/1.1\r\n{h}Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n0\r\n\r\nGET /admin HTTP/1.1\r\n{h}\r\n",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding: identity\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Content-Length: 3\r\nContent-Length: 5\r\n\r\nabcde",
        f"POST / HTTP/1.1\r\n{h}Content-Length: +3\r\n\r\nabc",
        f"POST / HTTP/1.1\r\n{h}Content-Length: 99999999999999999999\r\n\r\nabc",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nZ\r\nabc\r\n0\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n3;a=\rb\r\nabc\r\n0\r\n\r\n",
        f"POST / HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
        "GET / HTTP/1.1\nHost: shop\n\n",
        "GET / HTTP/1.1\r\nHost: shop\r\nX-A: a\x00b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: shop\r\nX-A: a\rb\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : shop\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: shop\r\nX-A: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: shop\r\nHost: other\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: \r\n\r\n",
        "GET / HTTP/1.1\r\nHost: shop:99999\r\n\r\n",
        "GET http://user:pw@shop/ HTTP/1.1\r\nHost: other\r\n\r\n",
        "GET //shop/..%2f..%2fetc HTTP/1.1\r\nHost: shop\r\n\r\n",
        "GET /%zz?%00=%ff HTTP/1.1\r\nHost: shop\r\n\r\n",
        "OPTIONS * HTTP/1.1\r\nHost: shop\r\n\r\n",
        "CONNECT shop:80 HTTP/1.1\r\nHost: shop:80\r\n\r\n",
        f"GET / HTTP/1.1\r\n{h}Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        f"GET / HTTP/1.1\r\n{h}Connection: Content-Length\r\nContent-Length: 3\r\n\r\nabc",
        f"GET /ws HTTP/1.1\r\n{h}Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        f"GET / HTTP/1.1\r\n{h}" + "".join(f"X-H{i}: {i}\r\n" for i in range(101)) + "\r\n",
        f"GET / HTTP/1.1\r\n{h}X-Long: " + "a" * 8000 + "\r\n\r\n",
    ]
    for r in raw:
        write("http1", r.encode("latin-1"))
    # HTTP/2 with prior knowledge: preface, SETTINGS, one GET (HPACK:
    # :method GET, :scheme http, :path /, :authority "shop").
    preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    block = b"\x82\x86\x84\x41\x04shop"
    headers = len(block).to_bytes(3, "big") + b"\x01\x05\x00\x00\x00\x01" + block
    write("http1", preface + settings + headers)
    write("http1", preface + settings)


def route_seeds():
    for r in REQUESTS:
        method, target, headers = r[0], r[1], r[2]
        write("route", "\n".join([f"{method} {target}"] + headers) + "\n")
    write("route", "GET /\nhost: r\n%%\n" + """apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: r}
spec:
  hosts: [r.default.svc.cluster.local]
  resolution: STATIC
  ports: [{number: 80, name: http, protocol: HTTP}]
  endpoints: [{address: 10.0.0.1}, {address: 10.0.0.2, weight: 2}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: r}
spec:
  host: r
  trafficPolicy: {loadBalancer: {consistentHash: {httpHeaderName: x-k, ringHash: {minimumRingSize: 8}}}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: r}
spec:
  hosts: [r]
  http:
  - match: [{headers: {x-k: {prefix: a}}, withoutHeaders: {x-no: {exact: ""}}}]
    route: [{destination: {host: r}, weight: 0}]
  - route: [{destination: {host: r}}]
""")


def h1codec_seeds():
    """The codec target reads its input as requests and as responses: the
    http1 seeds (requests, smuggling shapes) plus responses and chunked
    framing edge cases."""
    for f in sorted((OUT / "http1").iterdir()):
        write("h1codec", f.read_bytes())
    raw = [
        "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\ngrpc-status: 0\r\n\r\n",
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nrest until close",
        "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
        "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\x81\x00",
        "HTTP/1.0 200 OK\r\n\r\nbody",
        "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n",
        "HTTP/1.1 200\r\nContent-Length: 1, 2\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0000000000000003;x=\"a b\"\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\n\r\n",
        "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3 ; x\r\nabc\r\n0\r\nA: 1\r\nB: 2\r\n\r\n",
        "\r\n\r\nGET / HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\nConnection: close\r\n\r\n",
    ]
    for r in raw:
        write("h1codec", r.encode("latin-1"))


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    config_seeds()
    http_seeds()
    h1codec_seeds()
    route_seeds()
    for t in ("config", "route", "http1", "h1codec"):
        print(t, len(list((OUT / t).iterdir())))


if __name__ == "__main__":
    main()
