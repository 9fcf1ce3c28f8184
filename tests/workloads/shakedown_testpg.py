"""A throwaway PostgreSQL server for the checker and workload tests: initdb once into a
template under /dev/shm, copy it per server, run ``postgres`` as an unprivileged user (it
refuses root), and always stop it. Until the environment API can start one, this is the
smallest real server the tests can use. The fixtures at the end are imported by the
conftest.py of tests/checkers and tests/workloads."""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import psycopg
import pytest

PG_BIN = Path(os.environ.get("SHAKEDOWN_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
TEST_USER = "shakedown-test"
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "unix_socket_directories": "",
    "fsync": "off",
    "full_page_writes": "off",
    "shared_buffers": "16MB",
    "max_connections": "40",
    "dynamic_shared_memory_type": "mmap",  # kept in the data dir, not in /dev/shm
}


def available() -> str | None:
    """None when a server can be started here, else why not."""
    missing = [b for b in ("initdb", "postgres") if not (PG_BIN / b).exists()]
    return f"PostgreSQL binaries missing in {PG_BIN}: {missing}" if missing else None


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--user-group", "--no-create-home", TEST_USER],
            check=False,
            capture_output=True,
        )
        pwd.getpwnam(TEST_USER)
    return TEST_USER


def _chown(path: Path, user: str | None) -> None:
    if user is not None:
        subprocess.run(["chown", "-R", f"{user}:{user}", str(path)], check=True)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Cluster:
    """A scratch directory holding one initdb template; ``server()`` copies it."""

    def __init__(self) -> None:
        self.user = _run_as()
        self.root = Path(tempfile.mkdtemp(prefix="shakedown-testpg-", dir="/dev/shm"))
        _chown(self.root, self.user)
        self.template = self.root / "template"
        subprocess.run(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.template),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            check=True,
            capture_output=True,
            user=self.user,
        )
        self._count = 0

    def server(self) -> Server:
        self._count += 1
        data = self.root / f"server{self._count}"
        subprocess.run(["cp", "-a", str(self.template), str(data)], check=True)
        return Server(data, free_port(), self.user)

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


class Server:
    """One ``postgres`` process group; ``kill`` (SIGKILL), ``pause``/``resume`` (SIGSTOP/
    SIGCONT) act on the postmaster and all its children, as a crash or a frozen machine
    would."""

    def __init__(self, data: Path, port: int, user: str | None) -> None:
        self.data, self.port, self.user = data, port, user
        self.process: subprocess.Popen[bytes] | None = None

    def url(self, dbname: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def start(self, timeout: float = 20.0) -> Server:
        options = [
            a for k, v in {**SETTINGS, "port": str(self.port)}.items() for a in ("-c", f"{k}={v}")
        ]
        with (self.data / "server.log").open("ab") as log:
            self.process = subprocess.Popen(
                [str(PG_BIN / "postgres"), "-D", str(self.data), *options],
                stdout=log,
                stderr=subprocess.STDOUT,
                user=self.user,
                start_new_session=True,
            )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited while starting:\n{self.log_tail()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres not ready in {timeout}s:\n{self.log_tail()}"
                    ) from exc
                time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        log = self.data / "server.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def _signal_group(self, signum: int) -> None:
        """Signal the postmaster and its children. Each backend makes itself a process group
        leader, so a signal to the postmaster's group would miss them; the postmaster is
        held stopped meanwhile so it cannot fork a backend that escapes the signal."""
        if self.process is None:
            return
        try:
            postmaster = psutil.Process(self.process.pid)
            postmaster.suspend()
            children = postmaster.children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for process in (*children, postmaster):
            with contextlib.suppress(psutil.NoSuchProcess):
                process.send_signal(signum)
        if signum not in (signal.SIGSTOP, signal.SIGKILL):
            with contextlib.suppress(psutil.NoSuchProcess):
                postmaster.resume()

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)
        if self.process is not None:
            self.process.wait(10)

    def pause(self) -> None:
        self._signal_group(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal_group(signal.SIGCONT)

    def stop(self) -> None:
        """Immediate shutdown (SIGQUIT: frees shared memory), SIGKILL if it lingers."""
        if self.process is None:
            return
        self.resume()
        try:
            stragglers = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            stragglers = []
        self._signal_group(signal.SIGQUIT)
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.process.wait(5)
        _, alive = psutil.wait_procs(stragglers, timeout=5)
        for process in alive:
            with contextlib.suppress(psutil.NoSuchProcess):
                process.kill()
        self.process = None

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.url(), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


@contextlib.contextmanager
def running(cluster: Cluster) -> Iterator[Server]:
    server = cluster.server()
    try:
        yield server.start()
    finally:
        server.stop()


# -- pytest fixtures ----------------------------------------------------------------------

_names = itertools.count()


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    if (reason := available()) is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (in CI missing infrastructure is an error)")
        pytest.skip(reason)
    cluster = Cluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture(scope="session")
def pg_server(pg_cluster: Cluster) -> Iterator[Server]:
    """One server for the session (tests use their own database on it)."""
    with running(pg_cluster) as server:
        yield server


@pytest.fixture
def pg_url(pg_server: Server) -> str:
    """A fresh, empty database for the test."""
    return pg_server.create_database(f"test_{next(_names)}")


@pytest.fixture
def private_pg(pg_cluster: Cluster) -> Iterator[Callable[[], Server]]:
    """Start servers of the test's own (to kill or pause), stopped when the test ends."""
    with contextlib.ExitStack() as stack:
        yield lambda: stack.enter_context(running(pg_cluster))
