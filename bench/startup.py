"""Startup benchmark (issue #2): how fast shakedown brings servers to readiness, beside the
physical floor and pytest-postgresql measured in the same run on the same machine.

    python bench/startup.py [--runs N]

Measured:
- floor: copy the cached initdb template and spawn ``postgres`` by hand until a connection
  succeeds (what any tool must at least do);
- shakedown: ``Environment.up()`` of one postgres, of a primary + streaming replica, of redis;
- pytest-postgresql: its ``postgresql_proc`` + ``postgresql`` fixtures' setup for the first
  test (initdb + pg_ctl start + database), read from ``pytest --durations``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import psycopg
import redis

sys.path.insert(0, str(Path(__file__).parent))
from _common import Figures, repeat, timed, verdict
from shakedown.environment import Environment
from shakedown.process import PortAllocator, runtime_root, service_user
from shakedown.services.kinds.postgres import ensure_template, find_binaries


def topology(text: str) -> Path:
    directory = Path(tempfile.mkdtemp(prefix="shakedown-bench-"))
    (directory / "shakedown.toml").write_text(textwrap.dedent(text))
    return directory / "shakedown.toml"


def shakedown_up(path: Path) -> float:
    env = Environment.from_file(path)
    seconds = timed(env.up)
    env.down()
    return seconds


def floor_once() -> float:
    """cp -a the template, spawn postgres, poll a connection every millisecond."""
    binaries = find_binaries(None)
    run_as = service_user()
    template = ensure_template(binaries, (), run_as)
    ports = PortAllocator(runtime_root(), "bench-floor")
    port = ports.allocate()
    target = Path(tempfile.mkdtemp(dir="/dev/shm")) / "pgdata"
    target.parent.chmod(0o755)  # the server user must reach its data directory
    began = time.perf_counter()
    subprocess.run(["cp", "-a", str(template.data_dir), str(target)], check=True)
    with (target / "postgresql.conf").open("a") as conf:
        conf.write(f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
                   "unix_socket_directories = ''\nfsync = off\n")
    proc = subprocess.Popen([binaries.tool("postgres"), "-D", str(target)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            user=run_as.uid if run_as else None,
                            group=run_as.gid if run_as else None, start_new_session=True)
    deadline = began + 30
    while True:
        try:
            psycopg.connect(host="127.0.0.1", port=port, user="postgres", dbname="postgres",
                            password=template.bootstrap_password, connect_timeout=1).close()
            break
        except psycopg.OperationalError:
            if proc.poll() is not None or time.perf_counter() > deadline:
                raise RuntimeError("the floor's postgres did not start") from None
            time.sleep(0.001)
    seconds = time.perf_counter() - began
    os.killpg(proc.pid, signal.SIGINT)
    proc.wait()
    shutil.rmtree(target.parent)
    ports.release(port)
    return seconds


def redis_floor_once() -> float:
    """Spawn redis-server by hand (as shakedown would: the service user, no persistence) and
    PING it every millisecond until it answers."""
    run_as = service_user()
    ports = PortAllocator(runtime_root(), "bench-floor")
    port = ports.allocate()
    began = time.perf_counter()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", "/tmp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            user=run_as.uid if run_as else None,
                            group=run_as.gid if run_as else None, start_new_session=True)
    while True:
        try:
            with redis.Redis(port=port, socket_connect_timeout=1) as client:
                client.ping()
            break
        except redis.ConnectionError:
            if proc.poll() is not None:
                raise RuntimeError("the floor's redis-server did not start") from None
            time.sleep(0.001)
    seconds = time.perf_counter() - began
    proc.kill()
    proc.wait()
    ports.release(port)
    return seconds


PYTEST_POSTGRESQL_TEST = """
def test_first(postgresql):
    assert postgresql.execute("SELECT 1").fetchone() == (1,)
"""


def pytest_postgresql_once(python: Path, user: str | None) -> float:
    """Setup time of the first test using pytest-postgresql's process fixture."""
    directory = Path(tempfile.mkdtemp(prefix="bench-pytest-postgresql-", dir="/var/tmp"))
    (directory / "test_pg.py").write_text(PYTEST_POSTGRESQL_TEST)
    bin_dir = find_binaries(None).bin_dir
    command = [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=0",
               "--durations-min=0", f"--postgresql-exec={bin_dir}/pg_ctl",
               f"--basetemp={directory}/tmp", "test_pg.py"]
    if user:
        shutil.chown(directory, user)
        command = ["runuser", "-u", user, "--", *command]
    out = subprocess.run(command, cwd=directory, capture_output=True, text=True, check=False)
    shutil.rmtree(directory, ignore_errors=True)
    match = re.search(r"([\d.]+)s setup\s+test_pg.py::test_first", out.stdout)
    if match is None:
        raise RuntimeError(f"pytest-postgresql run failed:\n{out.stdout}\n{out.stderr}")
    return float(match.group(1))


def pytest_postgresql_python() -> tuple[Path, str | None]:
    """A Python with pytest-postgresql that the unprivileged user can run (PostgreSQL refuses
    root, and root's pyenv Python is not readable by other users)."""
    run_as = service_user()
    if run_as is None:
        return Path(sys.executable), None
    venv = Path("/opt/shakedown/bench-venv")
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run(["/usr/bin/python3", "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "pytest",
                        "pytest-postgresql", "psycopg[binary]"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return python, run_as.user


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    runs = parser.parse_args().runs
    single = topology('[services.db]\nkind = "postgres"\n')
    pair = topology('[services.primary]\nkind = "postgres"\n'
                    '[services.replica]\nkind = "postgres"\nreplica_of = "primary"\n')
    cache = topology('[services.cache]\nkind = "redis"\n')
    shakedown_up(single)  # warm the template cache: initdb runs once per version and options

    print(f"startup benchmark, {runs} runs each, data on {runtime_root()}")
    floor = repeat("floor: cp template + spawn postgres + connect", runs, floor_once)
    one = repeat("shakedown: postgres ready", runs, lambda: shakedown_up(single))
    two = repeat("shakedown: primary + streaming replica ready", runs,
                 lambda: shakedown_up(pair))
    # Redis starts in ~20 ms with a wide spread on this VM: more runs, interleaved with the
    # floor so that both see the same machine.
    red_runs = [(shakedown_up(cache), redis_floor_once()) for _ in range(runs * 4)]
    red = Figures("shakedown: redis ready", [r[0] for r in red_runs])
    red_floor = Figures("floor: spawn redis-server + PING", [r[1] for r in red_runs])
    print(red.line())
    print(red_floor.line())
    python, user = pytest_postgresql_python()
    peer = repeat("pytest-postgresql: first test setup", max(3, runs // 3),
                  lambda: pytest_postgresql_once(python, user))
    print()
    print(verdict("shakedown postgres / floor (x)", one.median / floor.median, 1.5))
    print(verdict("pytest-postgresql / shakedown postgres (x faster)",
                  peer.median / one.median, 5.0, higher_is_better=True))
    print(verdict("primary + replica ready (ms)", two.median * 1000, 300))
    print(verdict("redis ready (ms)", red.median * 1000, 30))
    print(f"{'redis ready / redis floor (x)':<58} {red.median / red_floor.median:8.2f}")


if __name__ == "__main__":
    main()
