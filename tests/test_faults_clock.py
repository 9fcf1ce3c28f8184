"""Clock faults through libfaketime against real processes: a process's wall clock moves as set
(ahead, then jumped behind live, then healed back), PostgreSQL's ``now()`` and Redis's ``TIME``
follow their service's skew while the other services keep the real time, and the skew applied
is in the history."""

from __future__ import annotations

import sys
import time
import urllib.request
from collections.abc import Iterator

import psycopg
import pytest
import redis

from bounds import hang_bound
from shakedown import Environment
from shakedown.errors import FaultError
from shakedown.history import NEMESIS
from shakedown.process import faketime

pytestmark = pytest.mark.skipif(faketime.library() is None,
                                reason=f"libfaketime missing: {faketime.INSTALL}")

CLOCK = r'''
import http.server, sys, time

class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        body = repr(time.time()).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
'''

TOPOLOGY = """
[services.db]
kind = "postgres"

[services.cache]
kind = "redis"

[services.clock]
kind = "process"
command = ["{python}", "clock.py", "{port}"]
ready = { http = "/" }
"""
SLACK = 5.0  # seconds: what a loaded machine adds between reading two clocks


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    directory = tmp_path_factory.mktemp("clock")
    (directory / "shakedown.toml").write_text(TOPOLOGY.replace("{python}", sys.executable))
    (directory / "clock.py").write_text(CLOCK)
    with Environment.from_file(directory / "shakedown.toml") as environment:
        yield environment


@pytest.fixture(autouse=True)
def healed(env: Environment) -> Iterator[None]:
    yield
    env.faults.heal()


def skew_of_process(env: Environment) -> float:
    url = f"http://127.0.0.1:{env['clock'].port}/"
    with urllib.request.urlopen(url, timeout=hang_bound(10)) as response:
        return float(response.read()) - time.time()


def skew_of_postgres(env: Environment) -> float:
    with psycopg.connect(env["db"].url, connect_timeout=10) as conn:
        row = conn.execute("SELECT extract(epoch FROM clock_timestamp())::float8").fetchone()
    assert row is not None
    return float(row[0]) - time.time()


def skew_of_redis(env: Environment) -> float:
    seconds, micros = redis.Redis.from_url(env["cache"].url).time()
    return seconds + micros / 1e6 - time.time()


def test_a_process_clock_moves_as_set_jumps_live_and_heals(env: Environment) -> None:
    assert abs(skew_of_process(env)) < SLACK
    env.faults.clock("clock", 3600)
    assert abs(skew_of_process(env) - 3600) < SLACK
    env.faults.clock("clock", -1800)  # a jump back (the service restarts with it)
    assert abs(skew_of_process(env) + 1800) < SLACK
    assert len(env.faults.active()) == 1  # the jump replaced the first skew
    env.faults.heal()
    assert abs(skew_of_process(env)) < SLACK
    starts = [op.value for op in env.history.ops() if op.process == NEMESIS
              and op.f == "fault-start" and op.value.get("kind") == "clock"]
    assert [v["offset"] for v in starts[-2:]] == [3600, -1800]
    assert starts[-1]["spec"] == "-1800.000s"


def test_a_clock_that_runs_fast(env: Environment) -> None:
    env.faults.clock("clock", 0, rate=2.0)
    first = skew_of_process(env)
    time.sleep(3)
    # Twice as fast: three more seconds of skew in three seconds (whatever it started at).
    assert skew_of_process(env) - first == pytest.approx(3, abs=SLACK / 2)


def test_postgres_follows_its_own_skew_only(env: Environment) -> None:
    env.faults.clock("db", 600)
    assert abs(skew_of_postgres(env) - 600) < SLACK
    assert abs(skew_of_process(env)) < SLACK  # another service: real time
    assert abs(skew_of_redis(env)) < SLACK
    env.faults.heal()
    assert abs(skew_of_postgres(env)) < SLACK


def test_redis_refuses_libfaketime_clearly_and_runs_again(env: Environment) -> None:
    # Measured: redis-server (jemalloc) aborts at start under libfaketime 0.9.10 with
    # "Unexpected recursive calls to clock_gettime()"; the fault says so and restarts it.
    try:
        env.faults.clock("cache", -600)
    except FaultError as exc:
        assert "does not start under libfaketime" in exc.what
        assert env.faults.active() == []
    else:  # a libfaketime that works with it: then its clock must move as set
        assert abs(skew_of_redis(env) + 600) < SLACK
    env.faults.heal()
    assert abs(skew_of_redis(env)) < SLACK


def test_bad_rate_is_refused_and_changes_nothing(env: Environment) -> None:
    with pytest.raises(FaultError, match="out of range"):
        env.faults.clock("clock", 0, rate=-1)
    with pytest.raises(FaultError, match="no service named"):
        env.faults.clock("nosuch", 5)
    assert env.faults.active() == []
