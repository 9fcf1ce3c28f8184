"""Resource faults against real processes: a memory limit the kernel enforces by OOM-killing a
process that allocates past it, CPU throttling the kernel's counters and the process's CPU
time show, a pids limit that makes fork fail, a full disk under PostgreSQL (insert → ENOSPC,
heal → insert works), each healed at the end and recorded in the history; and the refusals
that say what is missing."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from bounds import hang_bound
from shakedown import Environment
from shakedown.errors import FaultError
from shakedown.history import NEMESIS
from shakedown.process import cgroups, datamount

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="cgroups and mounts need root")

# One small HTTP server, three services: each endpoint does one thing a fault can stop.
PROBE = r'''
import http.server, os, resource, subprocess, sys, time

held = []

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        path, _, arg = self.path.partition("?")
        if path == "/grow":  # allocate and touch arg MiB
            for _ in range(int(arg)):
                held.append(bytearray(b"x" * (1 << 20)))
            return self.answer(200, str(len(held)))
        if path == "/fork":
            try:
                subprocess.run(["true"], check=True)
            except OSError as exc:
                return self.answer(500, f"{type(exc).__name__}: {exc}")
            return self.answer(200, "forked")
        if path == "/spin":  # busy for arg seconds of wall time; answer the CPU time used
            began, cpu = time.monotonic(), time.process_time()
            while time.monotonic() - began < float(arg):
                pass
            return self.answer(200, f"{time.process_time() - cpu:.3f}")
        return self.answer(200, "ok")

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''

TOPOLOGY = """
[services.db]
kind = "postgres"
databases = ["app"]

[services.hog]
kind = "process"
command = ["{python}", "probe.py", "{port}"]
ready = { http = "/" }

[services.forker]
kind = "process"
command = ["{python}", "probe.py", "{port}"]
ready = { http = "/" }

[services.spinner]
kind = "process"
command = ["{python}", "probe.py", "{port}"]
ready = { http = "/" }
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    directory = tmp_path_factory.mktemp("resources")
    (directory / "shakedown.toml").write_text(TOPOLOGY.replace("{python}", sys.executable))
    (directory / "probe.py").write_text(PROBE)
    with Environment.from_file(directory / "shakedown.toml") as environment:
        yield environment


@pytest.fixture(autouse=True)
def healed(env: Environment) -> Iterator[None]:
    yield
    env.faults.heal()


def get(env: Environment, service: str, path: str, timeout: float = 30) -> tuple[int, str]:
    url = f"http://127.0.0.1:{env[service].port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=hang_bound(timeout)) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def observed(env: Environment, since: int, kind: str) -> list[dict[str, Any]]:
    return [op.value for op in env.history.ops()[since:]
            if op.process == NEMESIS and op.f == "observed" and op.value["kind"] == kind]


def wait_until(condition: Any, seconds: float) -> bool:
    deadline = time.monotonic() + hang_bound(seconds)
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return bool(condition())


def test_each_service_runs_in_cgroups_of_its_own(env: Environment) -> None:
    for name in ("db", "hog"):
        for controller in cgroups.CONTROLLERS:
            members = cgroups.members(controller, env.env_id, name)
            assert set(env[name].pids) <= set(members), (controller, name)
    assert not set(cgroups.members("memory", env.env_id, "db")) & \
        set(cgroups.members("memory", env.env_id, "hog"))


def test_memory_limit_oom_kills_a_process_that_allocates_past_it(env: Environment) -> None:
    since = len(env.history.ops())
    assert get(env, "hog", "/grow?8")[0] == 200  # well under the limit: fine
    with env.faults.memory_limit("hog", 64 << 20):
        with pytest.raises(OSError):  # the kernel kills it mid-request: no answer
            get(env, "hog", "/grow?256")
        assert wait_until(lambda: env["hog"].status() == "stopped", 10)
    kills = observed(env, since, "memory_limit")
    assert kills and kills[0]["oom_kills"] >= 1, kills
    assert kills[0]["max_usage"] <= 64 << 20
    env.faults.heal()  # starts it again, without the limit
    assert get(env, "hog", "/grow?128")[0] == 200


def test_memory_limit_below_what_is_used_is_refused_clearly(env: Environment) -> None:
    get(env, "hog", "/grow?32")
    with pytest.raises(FaultError, match=r"cannot reclaim enough|give a limit above"):
        env.faults.memory_limit("hog", 1 << 20)
    assert env.faults.active() == []


def test_cpu_limit_throttles_and_heals(env: Environment) -> None:
    since = len(env.history.ops())
    # 2 ms a period: even on a loaded machine, a busy loop hits that and is throttled.
    with env.faults.cpu_limit("spinner", 0.02):
        status, used = get(env, "spinner", "/spin?1.5")
    assert status == 200
    # A fiftieth of a core for 1.5 s of wall time: well under half of it on the CPU.
    assert float(used) < 0.75, used
    throttled = observed(env, since, "cpu_limit")
    assert throttled and throttled[0]["throttled_periods"] > 0, throttled
    assert cgroups.read("cpu", env.env_id, "spinner", "cpu.cfs_quota_us") == "-1"


def test_pids_limit_makes_fork_fail_until_healed(env: Environment) -> None:
    assert get(env, "forker", "/fork") == (200, "forked")
    since = len(env.history.ops())
    with env.faults.pids_limit("forker", 1):
        status, text = get(env, "forker", "/fork")
        assert status == 500 and "Resource temporarily unavailable" in text, text
    assert get(env, "forker", "/fork") == (200, "forked")
    refused = observed(env, since, "pids_limit")
    assert refused and refused[0]["forks_refused"] >= 1, refused


def test_disk_full_makes_postgres_inserts_fail_and_heal_gives_room_back(
        env: Environment) -> None:
    data = env["db"].ctx.data_dir
    assert datamount.mount_of(data) is not None
    with psycopg.connect(env["db"].url, autocommit=True, connect_timeout=10) as conn:
        conn.execute("DROP TABLE IF EXISTS filler")
        conn.execute("CREATE TABLE filler (pad text)")
        fault = env.faults.disk_full("db")
        with pytest.raises(psycopg.errors.DiskFull, match="No space left on device"):
            # Enough new heap pages that PostgreSQL must extend the file on disk.
            conn.execute("INSERT INTO filler SELECT repeat('x', 1000) "
                         "FROM generate_series(1, 20000)")
        free = datamount.usage(data)
        assert free[1] - free[0] < 1 << 20
        fault.heal()
        conn.execute("INSERT INTO filler SELECT repeat('x', 1000) FROM generate_series(1, 20000)")
        count = conn.execute("SELECT count(*) FROM filler").fetchone()
        assert count == (20000,)
    records = [op.value for op in env.history.ops() if op.process == NEMESIS
               and op.f == "fault-start" and op.value.get("kind") == "disk_full"]
    assert records and records[-1]["path"] == str(data)


def test_limits_set_by_another_process_are_lifted_by_heal(env: Environment) -> None:
    cgroups.write("pids", env.env_id, "forker", "pids.max", "1")  # as `shakedown fault` would
    assert get(env, "forker", "/fork")[0] == 500
    env.faults.heal()
    assert get(env, "forker", "/fork") == (200, "forked")


def test_bad_input_changes_nothing(env: Environment) -> None:
    for call, message in [(lambda: env.faults.cpu_limit("spinner", 0), "out of range"),
                          (lambda: env.faults.pids_limit("forker", 0), "below 1"),
                          (lambda: env.faults.memory_limit("hog", -1), "positive"),
                          (lambda: env.faults.disk_full("nosuch"), "no service named")]:
        with pytest.raises(FaultError, match=message):
            call()
    assert env.faults.active() == []
    assert cgroups.read("pids", env.env_id, "forker", "pids.max") == "max"


def test_groups_and_mounts_are_gone_after_down(tmp_path: Path) -> None:
    (tmp_path / "shakedown.toml").write_text(
        TOPOLOGY.split("[services.hog]")[0].replace('databases = ["app"]', ""))
    with Environment.from_file(tmp_path / "shakedown.toml") as env:
        env_id, data = env.env_id, env["db"].ctx.data_dir
        assert datamount.mount_of(data) is not None
        env.faults.pids_limit("db", 200)
    for controller in cgroups.CONTROLLERS:
        assert cgroups.group_path(controller, env_id, "db") is not None
        assert not cgroups.group_path(controller, env_id, "db").exists()  # type: ignore[union-attr]
    assert not [m for m in datamount.mounts() if str(m.target).startswith(str(data))]
    assert json.dumps(cgroups.members("pids", env_id, "db")) == "[]"


def test_a_resource_schedule_replays_from_its_seed(env: Environment) -> None:
    runs = []
    for _ in range(2):
        since = len(env.history.ops())
        with env.faults.schedule(("resource",), seed=2020, duration=2.5, every=(0.1, 0.3),
                                 lasting=(0.2, 0.4), targets=["spinner", "db"]) as nemesis:
            nemesis.wait()
        assert not nemesis.errors, nemesis.errors
        runs.append([step.key() for step in nemesis.done])
        starts = [op.value for op in env.history.ops()[since:]
                  if op.process == NEMESIS and op.f == "fault-start"]
        assert {v["kind"] for v in starts} <= {"cpu_limit", "disk_full"} and starts
        assert cgroups.read("cpu", env.env_id, "spinner", "cpu.cfs_quota_us") == "-1"
        used, size = datamount.usage(env["db"].ctx.data_dir)
        assert size - used > 1 << 20  # the disk has room again
    assert runs[0] == runs[1] and runs[0]


def shakedown_cli(env: Environment, *args: str) -> subprocess.CompletedProcess[str]:
    topology = env.topology.base_dir / "shakedown.toml"
    return subprocess.run([sys.executable, "-m", "shakedown", "fault", *args, "-f",
                           str(topology)], capture_output=True, text=True, check=False,
                          timeout=hang_bound(60))


def test_resource_faults_from_the_cli(env: Environment) -> None:
    done = shakedown_cli(env, "pids-limit", "forker", "1")
    assert done.returncode == 0 and "pids limit 1 on forker" in done.stdout, done.stderr
    assert get(env, "forker", "/fork")[0] == 500
    done = shakedown_cli(env, "memory-limit", "hog", "512M")
    assert done.returncode == 0, done.stderr
    assert cgroups.read("memory", env.env_id, "hog", "memory.limit_in_bytes") == str(512 << 20)
    assert shakedown_cli(env, "heal").returncode == 0
    assert get(env, "forker", "/fork") == (200, "forked")
    assert cgroups.read("pids", env.env_id, "forker", "pids.max") == "max"


@pytest.mark.parametrize("args, message", [
    (["memory-limit", "hog", "12"], "not a memory size"),
    (["memory-limit", "hog", "lots"], "not a memory size"),
    (["cpu-limit", "spinner", "0"], "0.001<=x<=64"),
    (["pids-limit", "forker", "0"], "x>=1"),
    (["disk-full", "nosuch"], "no service named"),
    (["clock", "hog", "soon"], "soon"),
])
def test_bad_cli_resource_faults_exit_non_zero(env: Environment, args: list[str],
                                               message: str) -> None:
    done = shakedown_cli(env, *args)
    assert done.returncode != 0 and message in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert cgroups.read("pids", env.env_id, "forker", "pids.max") == "max"
