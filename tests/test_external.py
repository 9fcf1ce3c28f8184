"""The ``external`` kind: readiness at protocol level (HTTP status, SELECT 1, PING, TCP),
exports, no processes (so no process faults), and switching a service to an external endpoint
with an overlay file, through ``Environment`` and through the CLI."""

from __future__ import annotations

import http.server
import os
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from shakedown.environment import Environment
from shakedown.errors import FaultError, ServiceStartError, TopologyError
from shakedown.process import tagged_processes
from shakedown.services import ExternalService, Killable, Pausable
from shakedown.topology import load_topology
from shakedown.topology.specs.external import ExternalSpec


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        status = {"/health": 200, "/api": 404, "/broken": 503}.get(self.path, 200)
        self.send_response(status)
        self.end_headers()
        self.wfile.write(self.path.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[str]:
    """A server that shakedown did not start: 'staging', as far as the tests know."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_http_external_ready_exports_and_references(
    write_topology: Callable[..., Path], http_server: str
) -> None:
    path = write_topology(f"""
        [services.api]
        kind = "external"
        url = "{http_server}/api"
        ready = {{ http = "/health" }}

        [services.client]
        kind = "process"
        command = ["{sys.executable}", "-c", "import os, http.server as h; body = os.environ['API'].encode(); H = type('H', (h.BaseHTTPRequestHandler,), {{'do_GET': lambda s: (s.send_response(200), s.end_headers(), s.wfile.write(body))}}); h.HTTPServer(('127.0.0.1', {{port}}), H).serve_forever()"]
        env = {{ API = "{{api.url}} {{api.host}} {{api.port}}" }}
        ready = {{ http = "/" }}
        """)  # noqa: E501
    with Environment.from_file(path) as env:
        api = env["api"]
        assert isinstance(api, ExternalService)
        port = int(http_server.rsplit(":", 1)[1])
        assert (api.url, api.host, api.port) == (f"{http_server}/api", "127.0.0.1", port)
        assert api.exports() == {"host": "127.0.0.1", "port": str(port),
                                 "url": f"{http_server}/api"}
        assert api.pids == [] and api.processes == [] and api.status() == "external"
        assert api.ready_seconds is not None and api.ready_seconds > 0  # it was probed
        assert httpx.get(env["client"].url, trust_env=False).text == \
            f"{http_server}/api 127.0.0.1 {port}"
        # No processes: process faults do not apply, and the faults layer says so.
        assert not isinstance(api, Killable) and not isinstance(api, Pausable)
        assert not hasattr(api, "kill") and not hasattr(api, "pause")
        for fault in (env.faults.kill, env.faults.pause, env.faults.stop):
            with pytest.raises(FaultError, match="'api' \\(external\\) does not support"):
                fault("api")
        env.faults.heal()  # nothing to heal on an external service, and no error


def test_http_default_readiness_accepts_any_answer_below_500(
    write_topology: Callable[..., Path], http_server: str
) -> None:
    # GET of the URL itself answers 404: the server is up, which is what matters by default.
    path = write_topology(f'[services.api]\nkind = "external"\nurl = "{http_server}/api"\n')
    with Environment.from_file(path) as env:
        assert env["api"].ready_seconds is not None


def test_http_readiness_failure_is_a_clear_error(
    write_topology: Callable[..., Path], http_server: str
) -> None:
    path = write_topology(f"""
        [services.api]
        kind = "external"
        url = "{http_server}"
        ready = {{ http = "/broken", status = 200 }}
        ready_timeout = "300ms"
        """)
    with pytest.raises(ServiceStartError) as caught:
        Environment.from_file(path).up()
    text = caught.value.render()
    assert f"external service 'api' at {http_server} is not reachable after 0.3s" in text
    assert f"GET {http_server}/broken -> 503, expected 200" in text


def test_unreachable_tcp_and_ready_none(write_topology: Callable[..., Path]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    path = write_topology(f"""
        [services.queue]
        kind = "external"
        url = "amqp://127.0.0.1:{closed_port}"
        ready_timeout = "200ms"
        """)
    with pytest.raises(ServiceStartError, match=f"TCP connect to 127.0.0.1:{closed_port}"):
        Environment.from_file(path).up()
    path = write_topology(f"""
        [services.queue]
        kind = "external"
        url = "amqp://127.0.0.1:{closed_port}"
        ready = "none"
        """)
    with Environment.from_file(path) as env:
        assert env["queue"].port == closed_port


def test_tcp_readiness_with_a_listener(write_topology: Callable[..., Path]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        path = write_topology(f'[services.mq]\nkind = "external"\nurl = "tcp://127.0.0.1:{port}"'
                              '\nready = { tcp = true }\n')
        with Environment.from_file(path) as env:
            assert env["mq"].url == f"tcp://127.0.0.1:{port}"


def test_postgres_url_ready_by_select_and_password_masked(
    write_topology: Callable[..., Path], tmp_path: Path
) -> None:
    (tmp_path / "db").mkdir()
    db_path = write_topology('[services.db]\nkind = "postgres"\n', name="db/shakedown.toml")
    with Environment.from_file(db_path) as shared:
        real = shared["db"]
        path = write_topology(f"""
            [services.shared-db]
            kind = "external"
            url = "{real.url}"
            """)
        with Environment.from_file(path) as env:
            db = env["shared-db"]
            with psycopg.connect(db.url) as conn:
                assert conn.execute("SELECT 1").fetchone() == (1,)
            assert db.port == real.port and db.host == "127.0.0.1"
        wrong = real.url.replace(real.password, "wrong-password")  # type: ignore[attr-defined]
        path = write_topology(f"""
            [services.shared-db]
            kind = "external"
            url = "{wrong}"
            ready_timeout = "300ms"
            """)
        with pytest.raises(ServiceStartError) as caught:
            Environment.from_file(path).up()
        text = caught.value.render()
        assert "SELECT 1 on postgresql://postgres:***@127.0.0.1" in text
        assert "password authentication failed" in text
        assert "wrong-password" not in text


def test_url_from_environment_variable(
    write_topology: Callable[..., Path], http_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_topology('[services.api]\nkind = "external"\nurl = "${STAGING_API}/v1"\n'
                          'ready = "none"\n')
    with pytest.raises(TopologyError, match=r"services.api.url: \$\{STAGING_API\} is not set"):
        Environment.from_file(path).up()
    monkeypatch.setenv("STAGING_API", http_server)
    with Environment.from_file(path) as env:
        assert env["api"].url == f"{http_server}/v1"


@pytest.mark.parametrize(("text", "expected"), [
    ("", "services.api.url: missing required key"),
    ('url = "staging.example/api"', "'staging.example/api' is not an absolute URL"),
    ('url = "http://h:99999"', "Port out of range"),
    ('url = "http://h"\nport = 80', "services.api.port: an external service has no local port"),
    ('url = "http://h"\nready = { http = "/a", tcp = true }',
     "give exactly one readiness strategy"),
    ('url = "http://h"\nready = { htp = "/a" }',
     "services.api.ready.htp: unknown key 'htp' (did you mean 'http'?)"),
    ('url = "http://h"\nready = "sometimes"', "ready = 'sometimes': use one of"),
    ('url = "http://h"\ncommand = ["x"]', "services.api.command: unknown key 'command'"),
])
def test_bad_external_topology(
    write_topology: Callable[..., Path], text: str, expected: str
) -> None:
    with pytest.raises(TopologyError) as caught:
        load_topology(write_topology(f'[services.api]\nkind = "external"\n{text}\n'))
    assert expected in caught.value.render(), caught.value.render()


# -- switching a service to an external endpoint with an overlay ----------------------------
API = '''
import http.server, os, psycopg
DB = os.environ["DATABASE_URL"]
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/health":
            body = b"ok"
        else:
            with psycopg.connect(DB) as conn:
                body = str(conn.execute("SELECT count(*) FROM items").fetchone()[0]).encode()
        self.send_response(200); self.end_headers(); self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
'''

BASE = f"""
[services.db]
kind = "postgres"
init = ["seed.sql"]

[services.api]
kind = "process"
command = ["{sys.executable}", "api.py"]
env = {{ DATABASE_URL = "{{db.url}}", PORT = "{{port}}" }}
ready = {{ http = "/health" }}
"""

OVERLAY = """
[services.db]
kind = "external"
url = "${STAGING_DB}"

[services.api]
kind = "external"
url = "${STAGING_API}"
ready = { http = "/health" }
"""


@pytest.fixture
def staging(tmp_path: Path) -> Iterator[tuple[Path, Path, Environment]]:
    """The base topology running as 'staging', and an overlay that points at it."""
    base = tmp_path / "shakedown.toml"
    base.write_text(BASE)
    (tmp_path / "api.py").write_text(API)
    (tmp_path / "seed.sql").write_text("CREATE TABLE items (id int);\n"
                                       "INSERT INTO items SELECT generate_series(1, 42);\n")
    overlay = tmp_path / "staging.toml"
    overlay.write_text(textwrap.dedent(OVERLAY))
    with Environment.from_file(base, "staging") as env:
        yield base, overlay, env


def test_overlay_switches_services_to_external(
    staging: tuple[Path, Path, Environment], monkeypatch: pytest.MonkeyPatch
) -> None:
    base, overlay, real = staging
    topology = load_topology([base, overlay])
    api_spec = topology.services["api"]
    assert isinstance(api_spec, ExternalSpec)  # replaced whole: no command, env, depends_on
    assert api_spec.url == "${STAGING_API}" and api_spec.depends_on == ()
    monkeypatch.setenv("STAGING_API", real["api"].url)
    monkeypatch.setenv("STAGING_DB", real["db"].url)
    with Environment.from_file([base, overlay], "local") as env:
        assert [s.kind for s in env.services.values()] == ["external", "external"]
        assert not tagged_processes(env.env_id)  # nothing was started
        assert httpx.get(f"{env['api'].url}/count", trust_env=False).text == "42"
        with psycopg.connect(env["db"].url) as conn:
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (42,)
    assert real["api"].status() == "running"  # the real one is untouched


def test_overlay_through_the_cli(staging: tuple[Path, Path, Environment]) -> None:
    base, overlay, real = staging
    env = {**os.environ, "STAGING_API": real["api"].url, "STAGING_DB": real["db"].url,
           "COLUMNS": "200"}

    def cli(*args: str, extra: dict[str, str] | None = None) -> str:
        result = subprocess.run([sys.executable, "-m", "shakedown", *args], cwd=base.parent,
                                env=extra or env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    out = cli("up", "-f", str(base), "-f", str(overlay), "--name", "local", "--detach")
    assert "ready" in out and real["api"].url in out
    # status and down read the URL from the state: they work without the variables set.
    bare = {k: v for k, v in env.items() if not k.startswith("STAGING_")}
    status = cli("status", "-f", str(base), "--name", "local", extra=bare)
    assert "external" in status and real["api"].url in status
    assert "***" in status and real["db"].password not in status  # type: ignore[attr-defined]
    assert f"API_URL={real['api'].url}" in cli("env", "-f", str(base), "--name", "local",
                                                extra=bare)
    cli("down", "-f", str(base), "--name", "local", extra=bare)
    assert not (base.parent / ".shakedown" / "envs" / "local").exists()
    assert real["api"].status() == "running"
