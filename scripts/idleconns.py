#!/usr/bin/env python3
"""Memory per idle keep-alive HTTP/1.1 connection held open through the
proxy, strait beside nginx and HAProxy (issue #15's memory case).

    scripts/idleconns.py STRAIT_BIN [N]      # N defaults to 10000

Each proxy runs with one worker and the bench routing of ../shared/bench
(HAProxy with `maxconn` raised above N, which its bench config caps at
8000). N client connections each send one request, read the response and
stay open; the proxy's RSS with them open minus its RSS before, over N, is
the cost of one idle connection. Loopback only; bounded by N and timeouts.
Needs nginx and haproxy, and a file-descriptor limit above N + 200.
"""
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CONF = os.path.join(HERE, "..", "..", "shared", "bench", "configs")
REQUEST = b"GET / HTTP/1.1\r\nHost: bench.local\r\n\r\n"


def rss_kb(pid):
    """RSS of a process and its children (nginx's master and worker)."""
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(l.split()[1]) for l in f if l.startswith("VmRSS:")), 0)
            for t in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{t}/children") as f:
                    todo += [int(c) for c in f.read().split()]
        except OSError:
            pass
    return total


def wait_port(port, seconds=15):
    end = time.time() + seconds
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.1)
    return False


def hold(port, n):
    """n connections, one request and its whole response on each."""
    socks = []
    for _ in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(REQUEST)
        buf = b""
        while b"\r\n\r\n" not in buf or len(buf) < buf.index(b"\r\n\r\n") + 4 + 1024:
            chunk = s.recv(65536)
            if not chunk:
                raise RuntimeError(f"port {port} closed a connection after {len(socks)}")
            buf += chunk
        socks.append(s)
    return socks


def main():
    strait = os.path.abspath(sys.argv[1])
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 10000
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if n + 200 > hard:
        sys.exit(f"N={n} needs a file-descriptor limit above {n + 200} (hard limit {hard})")
    run = tempfile.mkdtemp(prefix="idleconns-")
    for d in ("tmp-backend-body", "tmp-proxy-body", "tmp-proxy-temp"):
        os.makedirs(os.path.join(run, d), exist_ok=True)
    # HAProxy reserves two descriptors per connection: under a limit too
    # low for N it holds as many as it can (the figure is per connection).
    haproxy_n = min(n, (hard - 300) // 2 - 100)
    with open(os.path.join(CONF, "haproxy.cfg")) as f:
        haproxy = f.read().replace("maxconn 8000", f"maxconn {haproxy_n + 100}")
    with open(os.path.join(run, "haproxy.cfg"), "w") as f:
        f.write(haproxy)
    backend = subprocess.Popen(
        ["nginx", "-p", run, "-e", f"{run}/backend.log", "-c", f"{CONF}/backend-nginx.conf"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(28080)
    peers = [
        ("nginx", ["nginx", "-p", run, "-e", f"{run}/nginx.log", "-g",
                   "worker_processes 1;", "-c", f"{CONF}/nginx-proxy.conf"], 28001, n),
        ("haproxy", ["haproxy", "-db", "-f", f"{run}/haproxy.cfg"], 28002, haproxy_n),
        ("strait", [strait, "run", "--config", f"{CONF}/istio-routing.yaml", "--listen",
                    "127.0.0.1:28003", "--admin", "127.0.0.1:28019", "--workers", "1",
                    "--max-connections", str(n + 1000)], 28003, n),
    ]
    print("| proxy | idle connections | idle RSS MiB | RSS with them MiB | KiB per connection |")
    print("|---|---|---|---|---|")
    try:
        for name, cmd, port, count in peers:
            p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=run,
                                 env=dict(os.environ, BENCH_WORKERS="1"), start_new_session=True)
            try:
                if not wait_port(port):
                    print(f"| {name} | did not start | | | |")
                    continue
                warm = hold(port, 3)  # first upstream connections, lazy set-up
                time.sleep(0.5)
                idle = rss_kb(p.pid)
                socks = hold(port, count)
                time.sleep(1)
                full = rss_kb(p.pid)
                print(f"| {name} | {count} | {idle / 1024:.1f} | {full / 1024:.1f} | {(full - idle) / count:.1f} |")
                sys.stdout.flush()
                for s in socks + warm:
                    s.close()
            finally:
                os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    os.killpg(p.pid, signal.SIGKILL)
    finally:
        backend.terminate()
        backend.wait(10)


if __name__ == "__main__":
    main()
