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


# -- tasks of ECS services: a small real provider kind, added to a copy of the package --------
FARM_SPEC = '''
"""The ``taskfarm`` kind's spec (test only): groups of HTTP server tasks."""

from __future__ import annotations

from typing import Literal

from .._base import ServiceSpec


class TaskFarmSpec(ServiceSpec):
    kind: Literal["taskfarm"] = "taskfarm"
    app: str
'''

FARM_SERVICE = '''
"""The ``taskfarm`` kind (test only): runs real HTTP server processes as the tasks of named
services, and answers ``task_targets`` (RoutesTasks) with those alive."""

from __future__ import annotations

import socket
import sys
import time

import httpx

from ...process import Spawned, spawn, stop_group
from ...topology.specs.taskfarm import TaskFarmSpec
from .._base import LOOPBACK, SpawnedService
from .._protocols import TaskTarget


class TaskFarmService(SpawnedService, kind="taskfarm"):
    spec: TaskFarmSpec
    tasks: dict[str, tuple[str, Spawned, int]]

    def start(self) -> None:
        self.tasks = {}

    def wait_ready(self) -> None:
        pass

    def run_task(self, service: str) -> str:
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        task_id = f"{service}-{port}"
        app = str(self.ctx.topology.resolve_path(self.spec.app))
        proc = spawn([sys.executable, app, task_id, str(port)], role=task_id,
                     log_path=self.ctx.log_dir / f"{task_id}.log", env_id=self.ctx.env_id)
        self.processes.append(proc)
        for _ in range(500):
            try:
                httpx.get(f"http://{LOOPBACK}:{port}/", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                time.sleep(0.01)
        self.tasks[task_id] = (service, proc, port)
        return task_id

    def stop_task(self, task_id: str) -> None:
        stop_group(self.tasks.pop(task_id)[1], timeout=5)

    def task_targets(self, cluster: str, service: str,
                     container_port: int | None = None) -> list[TaskTarget]:
        return [TaskTarget(LOOPBACK, port, task_id)
                for task_id, (name, proc, port) in list(self.tasks.items())
                if name == service and proc.alive()]
'''

FARM_TOPOLOGY = """
[services.farm]
kind = "taskfarm"
app = "app.py"

[services.lb]
kind = "router"
poll_interval = "100ms"

[[services.lb.routes]]
prefix = "/web"
strip_prefix = true
tasks = { from = "farm", cluster = "default", service = "web" }

[[services.lb.routes]]
prefix = "/session/{id}"
strip_prefix = true
tasks = { from = "farm", service = "session-{id}" }
"""

FARM_SCRIPT = '''
import json, sys, time
import httpx
from shakedown.environment import Environment
from shakedown.waits import eventually

def get(path):
    r = httpx.get(f"{env['lb'].url}{path}", timeout=5, trust_env=False)
    return r.status_code, (json.loads(r.text) if r.status_code == 200 else None)

def answers(path, code, name=None):
    def check():
        status, body = get(path)
        return status == code and (name is None or body["name"] == name)
    eventually(check, timeout=10, description=f"{path} -> {code} {name}")

with Environment.from_file(sys.argv[1]) as env:
    farm = env["farm"]
    print("EMPTY", get("/web/x")[0], get("/session/abc/x")[0])
    first = farm.run_task("web")
    answers("/web/x", 200, first)
    print("ONE", json.dumps(get("/web/x?q=1")[1]))
    second = farm.run_task("web")
    eventually(lambda: {get("/web/")[1]["name"] for _ in range(4)} == {first, second},
               timeout=10)
    print("TWO", "ok")
    farm.stop_task(first)
    eventually(lambda: all(get("/web/")[1]["name"] == second for _ in range(4)), timeout=10)
    farm.stop_task(second)
    answers("/web/x", 503)
    print("GONE", "ok")
    abc = farm.run_task("session-abc")
    answers("/session/abc/edit", 200, abc)
    print("SESSION", json.dumps(get("/session/abc/edit")[1]))
    print("OTHER", get("/session/def/")[0])
    defg = farm.run_task("session-def")
    answers("/session/def/", 200, defg)
    farm.stop_task(abc)
    answers("/session/abc/", 503)
    print("ISOLATED", get("/session/def/")[1]["name"] == defg)
    print("BAD", get("/session/a%20b/")[0])
'''


def test_task_routes_follow_a_real_routes_tasks_provider(tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    import shakedown

    copy = tmp_path / "pkg" / "shakedown"
    shutil.copytree(Path(shakedown.__file__).parent, copy,
                    ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "topology" / "specs" / "taskfarm.py").write_text(FARM_SPEC)
    (copy / "services" / "kinds" / "taskfarm.py").write_text(FARM_SERVICE)
    (tmp_path / "app.py").write_text(APP)
    topology = tmp_path / "shakedown.toml"
    topology.write_text(FARM_TOPOLOGY)
    env = {**{k: v for k, v in os.environ.items() if k.startswith("SHAKEDOWN_")},
           "PYTHONPATH": str(copy.parent), "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
    result = subprocess.run([sys.executable, "-c", FARM_SCRIPT, str(topology)], env=env,
                            capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["EMPTY"] == "503 503", "no task yet: 503 on both routes"
    one = json.loads(lines["ONE"])
    assert one["name"].startswith("web-") and one["path"] == "/x?q=1"
    assert lines["TWO"] == "ok" and lines["GONE"] == "ok"
    session = json.loads(lines["SESSION"])
    assert session["name"].startswith("session-abc-") and session["path"] == "/edit"
    assert lines["OTHER"] == "503", "a session without its task gets 503, not another's"
    assert lines["ISOLATED"] == "True"
    assert lines["BAD"] == "503"


def test_links_false_routes_straight_to_the_service(write_topology: Callable[..., Path]) -> None:
    path = write_topology(SERVICES + ROUTER.replace('kind = "router"',
                                                    'kind = "router"\nlinks = false'),
                          app__py=APP, ws__py=WS)
    with Environment.from_file(path) as env:
        assert not [name for name in env.faults.routes if name.startswith("lb-")]
        assert seen(env, "/api/x")["name"] == "api"
        assert f"127.0.0.1:{env['api'].port}" in env["lb"].config_path.read_text()  # type: ignore[attr-defined]
