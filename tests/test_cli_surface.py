"""The documented surface that no other test reaches, each part checked by its effect (so that a
command or key that were ignored fails): the ``shakedown fault`` subcommands through the CLI,
``logs --follow``, ``down --keep``, ``reap --all``, exit code 3; and the topology keys
``initdb_options``, redis ``settings``, the process kind's ``cwd`` and ``url`` and
``[environment] tmpfs``. One environment, brought up by the CLI, serves the module."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
import redis

from bounds import hang_bound
from shakedown.environment import Environment
from shakedown.process import tagged_processes
from shakedown.waits import eventually

TOPOLOGY = """
[environment]
tmpfs = false

[services.db]
kind = "postgres"
databases = ["app"]
initdb_options = ["--data-checksums"]

[services.cache]
kind = "redis"
[services.cache.settings]
maxmemory = "12mb"
maxmemory-policy = "allkeys-lru"

[services.app]
kind = "process"
command = ["{python}", "app.py", "{port}"]
cwd = "appdir"
url = "http://{host}:{port}/v1"
env = { DATABASE_URL = "{db.url}", REDIS_URL = "{cache.url}" }
ready = { http = "/health" }

[services.client]
kind = "process"
command = ["{python}", "-c", "import time; print('started', flush=True); time.sleep(3600)"]
env = { APP_URL = "{app.url}" }
ready = { log = "started" }

[links.app-db]
from = "app"
to = "db"

[links.app-cache]
from = "app"
to = "cache"
"""

# Only in appdir/: the command finds it only if the process runs there. GET /log?m=TEXT
# prints TEXT, for logs --follow to show.
APP = """
import http.server, sys, urllib.parse

class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/log":
            print(urllib.parse.parse_qs(url.query)["m"][0], flush=True)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
"""


def cli(cwd: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shakedown", *args], cwd=cwd,
                          capture_output=True, text=True, check=False,
                          timeout=hang_bound(timeout), env={**os.environ, "COLUMNS": "200"})


def ok(cwd: Path, *args: str) -> str:
    result = cli(cwd, *args)
    assert result.returncode == 0, f"shakedown {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    directory = tmp_path_factory.mktemp("surface")
    (directory / "shakedown.toml").write_text(TOPOLOGY)
    (directory / "appdir").mkdir()
    (directory / "appdir" / "app.py").write_text(APP)
    ok(directory, "up", "--detach")
    try:
        yield directory
    finally:
        ok(directory, "down")


def attached(project: Path) -> Environment:
    """The running environment as its state file describes it now."""
    return Environment.attach("default", project / ".shakedown")


def pg(url: str) -> psycopg.Connection:  # type: ignore[type-arg]
    return psycopg.connect(url, autocommit=True, connect_timeout=2)


# -- topology keys ---------------------------------------------------------------------------
def test_topology_keys_take_effect(project: Path) -> None:
    env = attached(project)
    with pg(env["db"].url) as conn:  # initdb_options: checksums are off by default
        assert conn.execute("SHOW data_checksums").fetchone() == ("on",)
    cache = redis.Redis.from_url(env["cache"].url)
    assert cache.config_get("maxmemory") == {"maxmemory": str(12 * 1024 * 1024)}
    assert cache.config_get("maxmemory-policy") == {"maxmemory-policy": "allkeys-lru"}
    cache.close()
    app = env["app"]
    assert Path(os.readlink(f"/proc/{app.pids[0]}/cwd")) == (project / "appdir").resolve()
    assert app.url == f"http://127.0.0.1:{app.port}/v1"
    client_env = Path(f"/proc/{env['client'].pids[0]}/environ").read_bytes().split(b"\0")
    assert f"APP_URL={app.url}".encode() in client_env  # {app.url} is the declared url
    # tmpfs = false: data on disk (SHAKEDOWN_DISK_DIR), not on /dev/shm.
    data = env.data_dir
    assert data.is_relative_to(os.environ["SHAKEDOWN_DISK_DIR"]), data
    assert _filesystem(data / "db") != "tmpfs"


def _filesystem(path: Path) -> str:
    """The type of the filesystem holding ``path`` (longest mount point that contains it)."""
    best, kind = "", "?"
    for line in Path("/proc/mounts").read_text().splitlines():
        _, mount, fstype, *_ = line.split()
        if str(path).startswith(mount.rstrip("/") + "/") and len(mount) > len(best):
            best, kind = mount, fstype
    return kind


# -- shakedown fault, through the CLI ----------------------------------------------------------
def test_fault_stop_start_restart(project: Path) -> None:
    port = attached(project)["db"].port
    assert "stop: db (stopped)" in ok(project, "fault", "stop", "db")
    with pytest.raises(psycopg.OperationalError):
        pg(attached(project)["db"].url)
    assert "service db: stopped" in ok(project, "fault", "list")
    assert "start: db (running)" in ok(project, "fault", "start", "db")
    env = attached(project)
    assert env["db"].port == port
    with pg(env["db"].url) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    before = env["cache"].pids
    assert "restart: cache (running)" in ok(project, "fault", "restart", "cache")
    after = attached(project)["cache"]
    assert after.pids != before and after.port == env["cache"].port
    assert redis.Redis.from_url(after.url).ping()


def test_fault_pause_resume(project: Path) -> None:
    assert "paused cache" in ok(project, "fault", "pause", "cache")
    client = redis.Redis.from_url(attached(project)["cache"].url, socket_timeout=0.5)
    try:
        with pytest.raises(redis.TimeoutError):
            client.ping()
        assert "service cache: paused" in ok(project, "fault", "list")
    finally:
        resumed = ok(project, "fault", "resume", "cache")
    assert "resumed cache" in resumed
    assert client.ping()
    client.close()


def test_fault_bandwidth_down_reset_peer(project: Path) -> None:
    env = attached(project)
    cache_link, db_link = env.link("app-cache").url, env.link("app-db").url
    redis.Redis.from_url(env["cache"].url).set("blob", b"x" * 40_000)
    try:
        assert "bandwidth 20 KB/s on app-cache" in ok(project, "fault", "bandwidth",
                                                       "app-cache", "20")
        assert "link app-cache: bandwidth downstream (rate_kbps=20)" in ok(project, "fault",
                                                                          "list")
        client = redis.Redis.from_url(cache_link)
        began = time.monotonic()
        assert client.get("blob") == b"x" * 40_000
        assert time.monotonic() - began >= 1.5, "40 KB at 20 KB/s take 2 s"
        client.close()
        ok(project, "fault", "heal")

        assert "link app-db is down" in ok(project, "fault", "down", "app-db")
        with pytest.raises(psycopg.OperationalError):
            pg(db_link)
        ok(project, "fault", "heal")
        with pg(db_link) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)

        assert "reset_peer on app-cache" in ok(project, "fault", "reset-peer", "app-cache")
        with pytest.raises(redis.ConnectionError):
            redis.Redis.from_url(cache_link, retry_on_timeout=False).ping()
    finally:
        ok(project, "fault", "heal")
    assert redis.Redis.from_url(cache_link).ping()


def test_fault_partition_and_isolate(project: Path) -> None:
    env = attached(project)
    cache_link, db_link = env.link("app-cache").url, env.link("app-db").url
    try:
        out = ok(project, "fault", "partition", "app", "db,cache")
        assert "partitioned app | db,cache: links app-db, app-cache" in out
        with pytest.raises(redis.TimeoutError):
            redis.Redis.from_url(cache_link, socket_timeout=0.5).ping()
        with pytest.raises(psycopg.OperationalError), pg(db_link) as conn:
            conn.execute("SELECT 1")
        ok(project, "fault", "heal")
        assert redis.Redis.from_url(cache_link, socket_timeout=2).ping()

        # No link between db and cache: the CLI says the cut is made in the kernel.
        out = ok(project, "fault", "partition", "db", "cache")
        assert "partitioned db | cache: kernel cache->db, db->cache" in out
        ok(project, "fault", "heal")

        assert "isolated db" in ok(project, "fault", "isolate", "db")
        with pytest.raises(psycopg.OperationalError), pg(db_link) as conn:
            conn.execute("SELECT 1")
        assert redis.Redis.from_url(cache_link, socket_timeout=2).ping(), "cache is not cut"
    finally:
        ok(project, "fault", "heal")
    with pg(db_link) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
    assert ok(project, "fault", "list").strip() == "no faults"


# -- logs --follow -------------------------------------------------------------------------------
def test_logs_follow_prints_new_lines_until_interrupted(project: Path) -> None:
    # As at a terminal: SIGINT at its default even when this run inherited it ignored (a
    # suite started in the background by a non-interactive shell), or Python ignores Ctrl-C.
    follow = subprocess.Popen([sys.executable, "-m", "shakedown", "logs", "app", "--follow",
                               "-n", "1"], cwd=project, stdout=subprocess.PIPE, text=True,
                              preexec_fn=_default_sigint)
    lines: queue.Queue[str] = queue.Queue()
    assert follow.stdout is not None
    threading.Thread(target=lambda: [lines.put(line) for line in follow.stdout],  # type: ignore[union-attr]
                     daemon=True).start()
    seen: list[str] = []
    try:
        app = attached(project)["app"]
        marker = f"followed-{os.getpid()}"

        def printed() -> bool:
            httpx.get(f"http://127.0.0.1:{app.port}/log", params={"m": marker},
                      trust_env=False)  # written after follow started: only --follow shows it
            while not lines.empty():
                seen.append(lines.get())
            return any(marker in line for line in seen)

        eventually(printed, timeout=15, interval=0.3, description="the new line is followed")
    finally:
        follow.send_signal(signal.SIGINT)
        try:
            code = follow.wait(hang_bound(10))
        finally:
            if follow.poll() is None:
                follow.kill()
                follow.wait()
    assert code == 0, "Ctrl-C ends --follow cleanly"


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


# -- down --keep, reap --all, exit code 3 (environments of their own) --------------------------
def small(tmp_path: Path) -> Path:
    (tmp_path / "shakedown.toml").write_text('[services.cache]\nkind = "redis"\n')
    return tmp_path


def test_down_keep_keeps_logs_and_state_until_the_next_up(tmp_path: Path) -> None:
    cwd = small(tmp_path)
    ok(cwd, "up", "--detach")
    first = attached(cwd)
    log = first["cache"].log_path
    assert "(data and logs kept)" in ok(cwd, "down", "--keep")
    assert not tagged_processes(first.env_id)
    assert "Ready to accept connections" in log.read_text()
    assert (cwd / ".shakedown" / "envs" / "default" / "state.json").exists()
    ok(cwd, "up", "--detach")
    try:
        second = attached(cwd)
        assert second.env_id != first.env_id
        assert first.env_id not in log.read_text(), "the next up starts with fresh logs"
    finally:
        ok(cwd, "down")
    assert not (cwd / ".shakedown" / "envs" / "default").exists()


def test_reap_all_also_reaps_detached_environments(tmp_path: Path, runtime_root: Path) -> None:
    cwd = small(tmp_path)
    ok(cwd, "up", "--detach")
    env_id = attached(cwd).env_id
    # detached: it lives until down, and reap says it left it alone
    assert ok(cwd, "reap").strip() == "nothing to reap (1 left alone: `--dry-run` lists them)"
    assert tagged_processes(env_id)
    out = ok(cwd, "reap", "--all")
    assert f"reaped default ({env_id})" in out
    assert not tagged_processes(env_id)
    assert [p.name for p in runtime_root.iterdir() if p.name != "ports"] == []


def test_a_missing_binary_exits_3(write_topology: Callable[..., Path]) -> None:
    path = write_topology('[services.cache]\nkind = "redis"\nbin_dir = "/nonexistent/bin"\n')
    result = cli(path.parent, "up", "--detach")
    assert result.returncode == 3, result.stdout + result.stderr
    assert "redis-server not found" in result.stderr
    assert "apt-get install -y redis-server" in result.stderr
    assert "Traceback" not in result.stderr
