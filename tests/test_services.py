"""Each service kind starts, answers at protocol level, and stops, against the real binaries."""

from __future__ import annotations

import os
import pwd
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from shakedown.environment import Environment
from shakedown.process import group_members
from shakedown.services import PostgresService, RedisService
from shakedown.waits import eventually


def test_postgres_starts_answers_and_stops(write_topology: Callable[..., Path]) -> None:
    path = write_topology("""
        [services.db]
        kind = "postgres"
        databases = ["app", "other"]
        init = ["schema.sql"]
        [services.db.settings]
        work_mem = "8MB"
        max_connections = 50
        """, schema__sql="CREATE TABLE items (id int primary key);\n"
                         "COPY items FROM stdin;\n1\n2\n\\.\n")
    with Environment.from_file(path) as env:
        db = env["db"]
        assert isinstance(db, PostgresService)
        assert db.url.startswith(f"postgresql://postgres:{db.password}@127.0.0.1:{db.port}/app")
        with psycopg.connect(db.url) as conn:
            assert conn.execute("SELECT count(*) FROM items").fetchone() == (2,)
            assert conn.execute("SHOW work_mem").fetchone() == ("8MB",)
            assert conn.execute("SHOW max_connections").fetchone() == ("50",)
            assert conn.execute("SHOW fsync").fetchone() == ("off",)  # test-friendly default
            assert conn.execute("SHOW listen_addresses").fetchone() == ("127.0.0.1",)
            names = {r[0] for r in conn.execute("SELECT datname FROM pg_database")}
            assert {"app", "other"} <= names
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            psycopg.connect(db.url.replace(db.password, "wrong"), connect_timeout=2)
        pids = db.pids
        assert pids and db.log_path.exists()
        assert "database system is ready" in db.log_tail()
    assert not group_members(pids[0]), "postgres must be stopped by down"


def test_postgres_runs_as_the_service_user(write_topology: Callable[..., Path]) -> None:
    """As root, servers run as the unprivileged user ``shakedown`` (PostgreSQL refuses root);
    otherwise as the user running the tests."""
    expected = "shakedown" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    with Environment.from_file(write_topology('[services.db]\nkind = "postgres"\n')) as env:
        owner = os.stat(f"/proc/{env['db'].pids[0]}").st_uid
        assert pwd.getpwuid(owner).pw_name == expected
        data = env["db"].ctx.data_dir / "pgdata"  # type: ignore[attr-defined]
        assert data.stat().st_uid == owner and (data.stat().st_mode & 0o777) == 0o700


def test_durable_keeps_fsync_on(write_topology: Callable[..., Path]) -> None:
    path = write_topology('[services.db]\nkind = "postgres"\ndurable = true\n')
    with Environment.from_file(path) as env, psycopg.connect(env["db"].url) as conn:
        assert conn.execute("SHOW fsync").fetchone() == ("on",)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)


def test_replica_streams_rows_written_on_primary(write_topology: Callable[..., Path]) -> None:
    path = write_topology("""
        [services.primary]
        kind = "postgres"
        databases = ["app"]
        init = ["schema.sql"]
        [services.replica]
        kind = "postgres"
        replica_of = "primary"
        """, schema__sql="CREATE TABLE t (id int primary key); INSERT INTO t VALUES (1);\n")
    with Environment.from_file(path) as env:
        primary, replica = env["primary"], env["replica"]
        with psycopg.connect(replica.url) as conn:
            # Ready means: in recovery, and the init rows are already there.
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (True,)
            assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)
        with psycopg.connect(primary.url, autocommit=True) as conn:
            conn.execute("INSERT INTO t SELECT generate_series(2, 1000)")
            state = conn.execute("SELECT state FROM pg_stat_replication").fetchone()
            assert state == ("streaming",)
        with psycopg.connect(replica.url, autocommit=True) as conn:
            eventually(lambda: conn.execute("SELECT count(*) FROM t").fetchone() == (1000,),
                       timeout=10, interval=0.01, description="the replica has the rows")
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                conn.execute("INSERT INTO t VALUES (5000)")


def test_redis_persistence_off_and_password(write_topology: Callable[..., Path]) -> None:
    with Environment.from_file(write_topology('[services.cache]\nkind = "redis"\n')) as env:
        cache = env["cache"]
        assert isinstance(cache, RedisService)
        client = redis.Redis.from_url(cache.url)
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=cache.host, port=cache.port).ping()
        client.close()


def test_redis_persistence_on(write_topology: Callable[..., Path]) -> None:
    path = write_topology('[services.cache]\nkind = "redis"\npersistence = true\n'
                          'password = false\n')
    with Environment.from_file(path) as env:
        client = redis.Redis.from_url(env["cache"].url)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert env["cache"].url == f"redis://127.0.0.1:{env['cache'].port}/0"
        client.close()


APP = '''
import http.server, os, pathlib, sys, threading, time
# Answers 503 until warm (0.5 s after it listens), then 200 with what it was given; "late"
# binds only once warm. Each readiness strategy must wait for warm: one that did not (or TCP in
# place of another) would return while /health still answers 503 or nothing listens.
warm = threading.Event()
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = (os.environ.get("DATABASE_URL", "") + "|" + " ".join(sys.argv[1:])).encode()
        self.send_response((200 if self.path == "/health" else 404) if warm.is_set() else 503)
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
def warm_up():
    time.sleep(0.5)
    pathlib.Path("warm.flag").write_text("warm")
    warm.set()
    print("warmed up", flush=True)
late = "late" in sys.argv
if late:
    warm_up()
server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
print("listening", flush=True)
if not late:
    threading.Thread(target=warm_up).start()
server.serve_forever()
'''


@pytest.mark.parametrize(("ready", "mode"), [
    ('{ http = "/health" }', "early"),
    ('{ tcp = true }', "late"),
    ('{ log = "warmed up" }', "early"),
    ('{ command = ["python3", "-c", "import os, sys; sys.exit(not os.path.exists(\'warm.flag\'))"] }', "early"),  # noqa: E501
])
def test_process_kind_readiness_and_references(
    write_topology: Callable[..., Path], ready: str, mode: str
) -> None:
    path = write_topology(f"""
        [services.db]
        kind = "postgres"
        [services.api]
        kind = "process"
        command = ["python3", "app.py", "{{port}}", "--db-port", "{{db.port}}", "{mode}"]
        env = {{ DATABASE_URL = "{{db.url}}" }}
        ready = {ready}
        """, app__py=APP)
    with Environment.from_file(path) as env:
        api, db = env["api"], env["db"]
        # At once, no retry: ready means warm, whichever strategy said so.
        response = httpx.get(f"{api.url}/health", timeout=5)
        assert response.status_code == 200, f"{ready}: up returned before the app was warm"
        assert response.text == f"{db.url}|{api.port} --db-port {db.port} {mode}"
        assert env.topology.start_order() == ["db", "api"]


STUBBORN = ("import signal, socket, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
            "s = socket.socket(); s.bind(('127.0.0.1', {port})); s.listen(); "
            "print('up', flush=True); time.sleep(120)")
# Says which signal stopped it; SIGTERM is ignored, so only SIGINT ends it before its 30 s
# stop_timeout (and the SIGKILL after it).
POLITE = ("import pathlib, signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
          "signal.signal(signal.SIGINT, lambda *a: (pathlib.Path(sys.argv[1]).write_text("
          "'SIGINT'), sys.exit(0))); print('up', flush=True); time.sleep(120)")


def test_process_stop_signal_and_timeout(write_topology: Callable[..., Path],
                                         tmp_path: Path) -> None:
    marker = tmp_path / "stopped-by"
    path = write_topology(f"""
        [services.stubborn]
        kind = "process"
        command = ["python3", "-c", "{STUBBORN}"]
        ready = {{ log = "up" }}
        stop_timeout = "300ms"
        [services.polite]
        kind = "process"
        command = ["python3", "-c", "{POLITE}", "{marker}"]
        ready = {{ log = "up" }}
        stop_signal = "SIGINT"
        stop_timeout = "30s"
        """)
    env = Environment.from_file(path).up()
    began = time.monotonic()
    env.down()
    elapsed = time.monotonic() - began
    assert marker.read_text() == "SIGINT", "the polite process was not stopped by SIGINT"
    # The stubborn one ignores SIGTERM: killed after its 300 ms stop_timeout, not after the
    # default 10 s (nor the polite one's 30 s, had SIGINT not stopped it).
    assert 0.3 <= elapsed < 10, elapsed
