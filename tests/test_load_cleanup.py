"""Cleanup under load (issue 17): 4 pytest-xdist workers each bring up a topology of 4
services 25 times (100 environments), with faults (a kill healed, a pause, a link cut),
under the leak guard in every worker; afterwards nothing is left: no process of the run, no
listening port of theirs, no runtime directory or port lock, no shared-memory segment."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from shakedown.process import tagged_processes

TESTS = Path(__file__).parent

TOPOLOGY = """
[services.cache]
kind = "redis"

[services.queue]
kind = "redis"

[services.api]
kind = "process"
command = ["{python}", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
ready = { http = "/" }
depends_on = ["cache"]

[services.worker]
kind = "process"
command = ["{python}", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]

[links.api-cache]
from = "api"
to = "cache"
"""

CYCLES = '''
import pytest, redis
from shakedown import Environment, eventually

@pytest.mark.parametrize("cycle", range(25))
@pytest.mark.parametrize("worker", range(4))
def test_cycle(worker, cycle):
    with Environment.from_file("shakedown.toml", name=f"w{worker}-c{cycle}") as env:
        env.faults.kill("worker")
        env.faults.pause("queue")
        env.faults.down("api-cache")
        env.faults.heal()
        assert env["worker"].status() == "running"
        assert redis.Redis.from_url(env["queue"].url).ping()
'''


def test_a_hundred_environments_on_four_workers_leave_nothing(
        pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, runtime_root: Path) -> None:
    monkeypatch.setenv("PYTHONPATH", str(TESTS))
    monkeypatch.delenv("CI", raising=False)
    pytester.makefile(".toml", shakedown=TOPOLOGY.replace("{python}", sys.executable))
    pytester.makepyfile(test_cycles=CYCLES)
    began = time.time()
    result = pytester.runpytest_subprocess("-p", "leak_guard", "-p", "no:cacheprovider",
                                           "-n", "4", "-q", timeout=900)
    result.assert_outcomes(passed=100)  # the guard in each worker failed none of them
    assert "leak guard" not in result.stdout.str()
    left = {pid: env for pid, env in tagged_processes().items() if INNER_ENV.match(env)}
    assert left == {}, f"processes of the inner run left: {left}"
    roots = [p for base in (Path("/dev/shm"), Path("/var/tmp"))
             for p in base.glob("shakedown-test-*") if _left_by_a_dead_run(p, began)]
    assert roots == [], f"runtime roots of the inner run left: {roots}"


INNER_ENV = re.compile(r"^w\d-c\d+-")


def _left_by_a_dead_run(root: Path, since: float) -> bool:
    """A guard root (named after its pytest process) made since ``since`` whose process is
    gone: the inner run's workers have all exited, so such a root is one they left."""
    pid = root.name.removeprefix("shakedown-test-").split("-")[0]
    try:
        made = root.stat().st_mtime
    except OSError:
        return False
    return pid.isdigit() and made >= since and not Path(f"/proc/{pid}").exists()
