"""Pause with the cgroup2 freezer (issue 17): a service's whole group stops at once, a daemon
that double-forked into a session of its own included (SIGSTOP per process does not reach it:
it is no longer in the service's process family); resume thaws it; a paused service still
stops gracefully (thawed first, its SIGTERM handler runs) and still dies of kill. Real
processes: a ticking Python server and its escaped daemon, each appending to a file."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shakedown.environment import Environment
from shakedown.process import cgroup2, family, pid_alive
from shakedown.waits import eventually

TICKER = """
import os, signal, sys, time

out = sys.argv[1]


def tick(name):
    while True:
        with open(os.path.join(out, name), "a") as f:
            f.write(".")
        time.sleep(0.01)


if os.fork() == 0:  # a daemon: double fork, a session of its own, its parent gone
    os.setsid()
    if os.fork() == 0:
        with open(os.path.join(out, "daemon.pid"), "w") as f:
            f.write(str(os.getpid()))
        tick("daemon")
    os._exit(0)


def term(*_):
    with open(os.path.join(out, "term"), "w") as f:
        f.write("graceful")
    sys.exit(0)


signal.signal(signal.SIGTERM, term)
print("ticking", flush=True)
tick("main")
"""


@dataclass
class Ticker:
    env: Environment
    out: Path

    def sizes(self) -> tuple[int, int]:
        return (self.out / "main").stat().st_size, (self.out / "daemon").stat().st_size

    def growing(self) -> bool:
        before = self.sizes()
        eventually(lambda: all(a > b for a, b in zip(self.sizes(), before, strict=True)),
                   timeout=10, description="both processes tick")
        return True


@pytest.fixture
def ticker(write_topology: Callable[..., Path], tmp_path: Path) -> Iterator[Ticker]:
    offered, why = cgroup2.offered()
    if not offered:
        pytest.skip(f"no cgroup2 freezer here: {why}")  # strict mode makes this a failure
    out = tmp_path / "ticks"
    out.mkdir()
    path = write_topology(f"""
        [services.ticker]
        kind = "process"
        command = ["python3", "ticker.py", "{out}"]
        ready = {{ log = "ticking" }}
        stop_timeout = "20s"
        """, ticker__py=TICKER)
    env = Environment.from_file(path)
    env.up()
    try:
        eventually(lambda: (out / "daemon.pid").exists() and (out / "daemon").exists()
                   and (out / "main").exists(), timeout=10)
        yield Ticker(env, out)
    finally:
        env.down()


def test_pause_freezes_an_escaped_daemon_and_resume_thaws_it(ticker: Ticker) -> None:
    env, out = ticker.env, ticker.out
    service = env["ticker"]
    daemon = int((out / "daemon.pid").read_text())
    (main,) = service.processes
    assert daemon not in family(main), "the daemon escaped the family: SIGSTOP would miss it"
    assert ticker.growing()
    with env.faults.pause("ticker"):
        assert service.status() == "paused"
        frozen = ticker.sizes()
        # Frozen before pause returned. Absence of progress needs a window: both processes
        # write every 10 ms, so in 300 ms a missed one writes about 30 times.
        time.sleep(0.3)
        assert ticker.sizes() == frozen, "a paused process went on writing"
    assert service.status() == "running"
    assert ticker.growing()


def test_a_paused_service_stops_gracefully_and_dies_of_kill(ticker: Ticker) -> None:
    env, out = ticker.env, ticker.out
    env.faults.pause("ticker")
    env.faults.stop("ticker")  # thawed first: the SIGTERM handler runs
    assert (out / "term").read_text() == "graceful"
    assert env["ticker"].status() == "stopped"
    old_daemon = int((out / "daemon.pid").read_text())
    assert not pid_alive(old_daemon), "the escaped daemon outlived the stop"
    (out / "daemon.pid").unlink()
    env.faults.start("ticker")
    eventually(lambda: (out / "daemon.pid").exists(), timeout=10)
    env.faults.pause("ticker")
    daemon = int((out / "daemon.pid").read_text())
    env.faults.kill("ticker")  # cgroup2: a frozen process still dies of SIGKILL
    assert env["ticker"].status() == "stopped"
    assert not pid_alive(daemon), "the escaped daemon outlived the kill"
    env.faults.heal()
    assert env["ticker"].status() == "running"
