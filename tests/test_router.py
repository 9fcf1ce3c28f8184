"""The ``router`` kind against real HAProxy and real HTTP/WebSocket servers: routes by prefix
(stripped or not) and host, longest prefix first, 404 off every route, a WebSocket upgraded
through it, 503 while a route has no healthy target (upstream killed, link down) and back after
the heal, the router's own kill and restart, and the topology errors for bad routes."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from shakedown.environment import Environment
from shakedown.errors import TopologyError
from shakedown.topology import load_topology
from shakedown.waits import eventually

# An HTTP server that answers {"name": NAME, "path": PATH, "host": HOST}; /health is 200.
APP = """
import http.server, json, sys

name, port = sys.argv[1], int(sys.argv[2])


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = json.dumps({"name": name, "path": self.path,
                           "host": self.headers.get("Host")}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler).serve_forever()
"""

# A WebSocket echo server (the websockets library), prefixing each message with the path.
WS = """
import sys
from websockets.sync.server import serve


def echo(connection):
    for message in connection:
        connection.send(f"{connection.request.path} {message}")


with serve(echo, "127.0.0.1", int(sys.argv[1])) as server:
    server.serve_forever()
"""

SERVICES = """
[services.api]
kind = "process"
command = ["{python}", "app.py", "api", "{port}"]
ready = { http = "/health" }

[services.web]
kind = "process"
command = ["{python}", "app.py", "web", "{port}"]
ready = { http = "/" }

[services.admin]
kind = "process"
command = ["{python}", "app.py", "admin", "{port}"]
ready = { http = "/" }

[services.hmr]
kind = "process"
command = ["{python}", "ws.py", "{port}"]
"""

ROUTER = """
[services.lb]
kind = "router"

[[services.lb.routes]]
prefix = "/api"
service = "api"
strip_prefix = true
health = "/health"

[[services.lb.routes]]
prefix = "/api/v2/raw"
service = "web"

[[services.lb.routes]]
prefix = "/static"
service = "web"

[[services.lb.routes]]
prefix = "/"
host = "admin.example.com"
service = "admin"

[[services.lb.routes]]
prefix = "/ws"
service = "hmr"
"""


@pytest.fixture
def router_topology(write_topology: Callable[..., Path]) -> Path:
    return write_topology(SERVICES + ROUTER, app__py=APP, ws__py=WS)


def get(env: Environment, path: str, host: str | None = None) -> httpx.Response:
    headers = {"Host": host} if host else {}
    return httpx.get(f"{env['lb'].url}{path}", headers=headers, timeout=5, trust_env=False)


def seen(env: Environment, path: str, host: str | None = None) -> dict[str, str]:
    response = get(env, path, host)
    assert response.status_code == 200, (path, response.status_code, response.text)
    answer: dict[str, str] = json.loads(response.text)
    return answer


def test_routes_by_prefix_and_host_with_and_without_stripping(router_topology: Path) -> None:
    with Environment.from_file(router_topology) as env:
        assert seen(env, "/api/items?x=1") == {"name": "api", "path": "/items?x=1",
                                               "host": f"127.0.0.1:{env['lb'].port}"}
        assert seen(env, "/api")["path"] == "/"
        assert seen(env, "/static/app.js") == {"name": "web", "path": "/static/app.js",
                                               "host": f"127.0.0.1:{env['lb'].port}"}
        # the longest prefix wins over /api, and is not stripped
        assert seen(env, "/api/v2/raw/x")["name"] == "web"
        assert seen(env, "/api/v2/raw/x")["path"] == "/api/v2/raw/x"
        assert seen(env, "/anything", host="admin.example.com")["name"] == "admin"
        assert seen(env, "/api/x", host="admin.example.com:80")["name"] == "admin"
        for path in ("/apix", "/", "/stati"):
            response = get(env, path)
            assert response.status_code == 404, path
            assert "no route" in response.text


def test_websocket_upgrade_through_the_router(router_topology: Path) -> None:
    with Environment.from_file(router_topology) as env, \
            connect(f"ws://127.0.0.1:{env['lb'].port}/ws/hmr") as ws:
        ws.send("hello")
        assert ws.recv(timeout=5) == "/ws/hmr hello"
        ws.send("again")
        assert ws.recv(timeout=5) == "/ws/hmr again"


def test_503_while_a_route_has_no_healthy_target(router_topology: Path) -> None:
    with Environment.from_file(router_topology) as env:
        assert seen(env, "/api/x")["name"] == "api"
        with env.faults.kill("api"):
            eventually(lambda: get(env, "/api/x").status_code == 503, timeout=10,
                       description="503 once the api's check fails")
            assert seen(env, "/static/x")["name"] == "web", "other routes still answer"
        eventually(lambda: get(env, "/api/x").status_code == 200, timeout=10)


def test_link_faults_reach_the_upstream_traffic(router_topology: Path) -> None:
    with Environment.from_file(router_topology) as env:
        assert "lb-api" in env.faults.routes
        with env.faults.partition(["lb"], ["api"]):
            eventually(lambda: get(env, "/api/x").status_code == 503, timeout=10)
        eventually(lambda: get(env, "/api/x").status_code == 200, timeout=10)
        with env.faults.latency("lb-web", ms=300):
            response = get(env, "/static/slow")
            assert response.status_code == 200
            assert response.elapsed.total_seconds() >= 0.3


def test_router_can_be_killed_and_started_again(router_topology: Path) -> None:
    with Environment.from_file(router_topology) as env:
        with env.faults.kill("lb"), pytest.raises(httpx.TransportError):
            get(env, "/api/x")
        assert seen(env, "/api/x")["name"] == "api"
        env.faults.restart("lb")
        assert seen(env, "/static/x")["name"] == "web"


def route_error(write_topology: Callable[..., Path], routes: str) -> str:
    path = write_topology(SERVICES + '[services.lb]\nkind = "router"\n' + routes,
                          app__py=APP, ws__py=WS)
    with pytest.raises(TopologyError) as info:
        load_topology(path)
    return str(info.value)


@pytest.mark.parametrize(("routes", "expected"), [
    ('[[services.lb.routes]]\nprefix = "/api"\nservice = "apx"\n',
     "services.lb.routes.0.service: no service named 'apx' (did you mean 'api'?)"),
    ('[[services.lb.routes]]\nprefix = "/api"\nservice = "api"\n'
     '[[services.lb.routes]]\nprefix = "/api/"\nservice = "web"\n',
     "services.lb.routes: routes 0 and 1 overlap: both route prefix '/api'"),
    ('[[services.lb.routes]]\nprefix = "api"\nservice = "api"\n',
     "services.lb.routes.0.prefix: prefix 'api' must start with '/'"),
    ('[[services.lb.routes]]\nprefix = "/a b"\nservice = "api"\n',
     "services.lb.routes.0.prefix: prefix '/a b': segment 'a b' is neither"),
    ('[[services.lb.routes]]\nprefix = "/a//b"\nservice = "api"\n',
     "prefix '/a//b' has an empty segment"),
    ('[[services.lb.routes]]\nprefix = "/session/{id}"\nservice = "api"\n',
     "prefix '/session/{id}' has the placeholder {id}"),
    ('[[services.lb.routes]]\nprefix = "/api"\n',
     "services.lb.routes.0: give exactly one target"),
    ('[[services.lb.routes]]\nprefix = "/s"\ntasks = { from = "nowhere", service = "x" }\n',
     "services.lb.routes.0.tasks.from: no service named 'nowhere'"),
    ('[[services.lb.routes]]\nprefix = "/s"\ntasks = { from = "api", service = "s-{id}" }\n',
     "tasks.service 's-{id}' holds {id} but prefix '/s' has no such placeholder"),
    ("routes = []\n", "services.lb.routes: Tuple should have at least 1 item"),
])
def test_bad_routes_are_topology_errors(write_topology: Callable[..., Path], routes: str,
                                        expected: str) -> None:
    assert expected in route_error(write_topology, routes)
