"""Router benchmark (issue 15): a small HTTP GET (keep-alive client, sequential requests) to one
upstream, in one run: direct; through a hand-written minimal HAProxy HTTP config (the floor:
what any HAProxy-based router pays); through the ``router`` kind with its upstream link (the
default: faults reach the upstream traffic, so it goes through the fault proxy); and through
the router with ``links = false`` (HAProxy straight to the upstream).

    python bench/router.py [--requests N] [--repeat R]

Target: the router within 1.5x of direct (median latency per request).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from _common import verdict
from shakedown import Environment
from shakedown.process import PortAllocator, runtime_root

APP = """
import http.server, sys

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        # one write: headers and body apart would meet the peer's delayed ACK (40 ms)
        self.wfile.write(b"HTTP/1.1 200 OK\\r\\nContent-Length: 2\\r\\n\\r\\nok")
    def log_message(self, *args):
        pass

http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""

TOPOLOGY = """
[services.app]
kind = "process"
command = ["{python}", "app.py", "{port}"]
ready = { http = "/" }

[services.lb]
kind = "router"
links = LINKS
[[services.lb.routes]]
prefix = "/"
service = "app"
"""

HAND = """
global
    nbthread 1
defaults
    mode http
    timeout connect 1s
    timeout client 30s
    timeout server 30s
frontend web
    bind 127.0.0.1:{port}
    default_backend app
backend app
    server app 127.0.0.1:{upstream}
"""


def per_request(url: str, requests: int) -> float:
    """Median seconds per GET over ``requests`` sequential GETs on one connection."""
    samples = []
    with httpx.Client(trust_env=False) as client:
        for _ in range(50):
            client.get(url)  # warm up the connection and both ends
        for _ in range(requests):
            began = time.perf_counter()
            response = client.get(url)
            samples.append(time.perf_counter() - began)
            assert response.status_code == 200
    return statistics.median(samples)


def hand_haproxy(upstream: int, directory: Path,
                 ports: PortAllocator) -> tuple[subprocess.Popen[bytes], int]:
    port = ports.allocate()
    config = directory / "hand.cfg"
    config.write_text(HAND.format(port=port, upstream=upstream))
    proc = subprocess.Popen(["/usr/sbin/haproxy", "-db", "-f", str(config)])
    for _ in range(500):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", trust_env=False)
            break
        except httpx.TransportError:
            time.sleep(0.01)
    return proc, port


def measure(requests: int, links: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        (directory / "app.py").write_text(APP)
        (directory / "shakedown.toml").write_text(
            TOPOLOGY.replace("LINKS", "true" if links else "false"))
        with Environment.from_file(directory / "shakedown.toml") as env:
            app, lb = env["app"], env["lb"]
            ports = PortAllocator(runtime_root(), "bench-router")
            proc, port = hand_haproxy(app.port, directory, ports)
            try:
                return {
                    "direct": per_request(f"http://127.0.0.1:{app.port}/", requests),
                    "hand": per_request(f"http://127.0.0.1:{port}/", requests),
                    "router": per_request(f"{lb.url}/", requests),
                }
            finally:
                proc.terminate()
                proc.wait()
                ports.release_all()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for links in (True, False):
        runs = [measure(args.requests, links) for _ in range(args.repeat)]
        figures = {key: statistics.median(r[key] for r in runs) for key in runs[0]}
        label = "router (upstream link through the fault proxy)" if links else \
            "router (links = false)"
        print(f"{label}: median per GET, {args.requests} GETs x {args.repeat} runs")
        for key, value in figures.items():
            print(f"  {key:<8} {value * 1e6:8.0f} us")
        print("  " + verdict("hand-written HAProxy / direct (floor)",
                             figures["hand"] / figures["direct"], 1.5))
        print("  " + verdict("router / direct", figures["router"] / figures["direct"], 1.5))
        print("  " + verdict("router / hand-written HAProxy",
                             figures["router"] / figures["hand"], 1.1))


if __name__ == "__main__":
    main()
