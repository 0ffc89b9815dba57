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


def h2frame(kind, flags, stream, payload):
    return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def h2codec_seeds():
    """A client's frames after the preface (RFC 9113), field blocks from
    RFC 7541 Appendix C, and the malformations the codec must refuse:
    bad Huffman padding and EOS, integer overflow, oversized or late table
    size updates, truncated frames, CONTINUATION without HEADERS, and
    malformed heads (RFC 9113 §8.2-8.3). Also written by name to
    corpus/h2codec/, the committed corpus this target started from."""
    h = bytes.fromhex
    get = h("8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d")
    get_huff = h("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff")
    get2 = h("8286 84be 5808 6e6f 2d63 6163 6865")
    get3 = h("8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65")
    resp = h("4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3")
    trailers = b"\x00\x0bgrpc-status\x010"
    EH, ES, PAD, PRI = 0x4, 0x1, 0x8, 0x20

    def lit(n, v):
        return bytes([0, len(n)]) + n + bytes([len(v)]) + v

    seeds = {
        "request-data-trailers": h2frame(1, EH, 1, get_huff) + h2frame(0, 0, 1, b"hello") + h2frame(1, EH | ES, 1, trailers),
        "three-requests-dynamic-table": h2frame(1, EH | ES, 1, get) + h2frame(1, EH | ES, 3, get2) + h2frame(1, EH | ES, 5, get3),
        "headers-continuation": h2frame(1, 0, 1, (get + get3[4:])[:5]) + h2frame(9, 0, 1, (get + get3[4:])[5:12]) + h2frame(9, EH, 1, (get + get3[4:])[12:]),
        "continuation-without-headers": h2frame(9, EH, 1, get),
        "continuation-other-stream": h2frame(1, 0, 1, get[:4]) + h2frame(9, EH, 3, get[4:]),
        "headers-interrupted-by-ping": h2frame(1, 0, 1, get[:4]) + h2frame(6, 0, 0, b"12345678") + h2frame(9, EH, 1, get[4:]),
        "padded-priority-headers": h2frame(1, EH | PAD | PRI, 1, b"\x03\x80\x00\x00\x00\x10" + get + b"\x00\x00\x00"),
        "control-frames": h2frame(4, 0, 0, h("000100001000 000300000064 000400010000 000500004000 000600002000 000800000001"))
        + h2frame(4, 1, 0, b"") + h2frame(8, 0, 0, h("00010000")) + h2frame(6, 0, 0, b"pingpong")
        + h2frame(2, 0, 3, h("0000000110")) + h2frame(3, 0, 1, h("00000008")) + h2frame(7, 0, 0, h("0000000100000000") + b"bye"),
        "bad-settings": h2frame(4, 0, 0, h("000500003fff")),
        "window-update-zero": h2frame(8, 0, 1, h("00000000")) + h2frame(8, 0, 0, h("00000000")),
        "push-promise": h2frame(5, EH, 1, h("00000002") + get),
        "truncated-frame": h2frame(1, EH, 1, get)[:-3],
        "oversized-frame": (20000).to_bytes(3, "big") + h("0004 00000001") + b"x" * 64,
        "bad-huffman-padding": h2frame(1, EH, 1, h("8286 84 41 81 00")),
        "huffman-eos": h2frame(1, EH, 1, h("8286 84 41 84 ffff ffff")),
        "integer-overflow": h2frame(1, EH, 1, h("ff ffffffff0f")),
        "table-update-too-large": h2frame(1, EH, 1, h("3fe21f") + get),
        "table-update-after-field": h2frame(1, EH, 1, get + h("20")),
        "index-out-of-range": h2frame(1, EH, 1, h("8286 84 ff00")),
        "uppercase-name": h2frame(1, EH, 1, get + lit(b"Accept", b"x")),
        "connection-header": h2frame(1, EH, 1, get + lit(b"connection", b"close") + lit(b"te", b"gzip")),
        "pseudo-after-regular": h2frame(1, EH, 1, lit(b"x", b"y") + get),
        "connect": h2frame(1, EH, 1, lit(b":method", b"CONNECT") + lit(b":authority", b"h:443")),
        "extended-connect": h2frame(1, EH, 1, lit(b":method", b"CONNECT") + lit(b":protocol", b"websocket") + h("87 84") + lit(b":authority", b"h")),
        "value-with-nul-and-space": h2frame(1, EH, 1, get + lit(b"x", b" a\x00b ")),
        "responses-block": resp + h("4883 640e ffc1 c0bf"),
        "large-continued-block": h2frame(1, 0, 1, get + lit(b"x-big", b"v" * 200)) + b"".join(h2frame(9, 0, 1, h("be") * 50) for _ in range(5)) + h2frame(9, EH, 1, h("be")),
    }
    for name, data in seeds.items():
        write("h2codec", data)
        (FUZZ / "corpus" / "h2codec").mkdir(parents=True, exist_ok=True)
        (FUZZ / "corpus" / "h2codec" / name).write_bytes(data)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    config_seeds()
    http_seeds()
    h1codec_seeds()
    route_seeds()
    h2codec_seeds()
    for t in ("config", "route", "http1", "h1codec", "h2codec"):
        print(t, len(list((OUT / t).iterdir())))


if __name__ == "__main__":
    main()
