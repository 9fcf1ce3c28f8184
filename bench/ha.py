"""Benchmark of the high-availability kinds: how long an etcd + 3-member Patroni + HAProxy
cluster takes to be ready, and how long a failover takes after the leader member is killed
(SIGKILL of Patroni and its postgres) until a write through HAProxy's primary port succeeds,
with shakedown's fast Patroni timing and with Patroni's own defaults, in the same run.

    .venv/bin/python bench/ha.py [--runs 3] [--skip-defaults]

Targets: cluster ready <= 4 s; failover <= ttl + 2 s; HAProxy routes writes to the new primary
within 1 s of its promotion (pg_is_in_recovery() turning false on it)."""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from shakedown.environment import Environment
from shakedown.services import HAProxyService, PatroniService

TOPOLOGY = """
[services.dcs]
kind = "etcd"

[services.db]
kind = "postgres-ha"
etcd = "dcs"
members = 3
{timing}

[services.lb]
kind = "haproxy"
backend = "db"
"""

CONFIGS = {
    # shakedown's defaults: Patroni 4's minimum ttl, loop_wait 1 s, retry_timeout 5 s.
    "shakedown": {"ttl": 20, "loop_wait": 1, "retry_timeout": 5},
    # Patroni's own defaults.
    "patroni-defaults": {"ttl": 30, "loop_wait": 10, "retry_timeout": 10},
}
READY_TARGET = 4.0
ROUTING_TARGET = 1.0


@dataclass
class Run:
    ready: float
    failover: float
    promotion: float

    @property
    def routing(self) -> float:
        return self.failover - self.promotion


@dataclass
class Result:
    name: str
    ttl: int
    runs: list[Run] = field(default_factory=list)


def one_run(directory: Path, timing: dict[str, int], index: int) -> Run:
    text = TOPOLOGY.format(timing="\n".join(f"{k} = {v}" for k, v in timing.items()))
    path = directory / f"run{index}.toml"
    path.write_text(textwrap.dedent(text))
    env = Environment.from_file(path, name=f"bench-ha-{index}", state_root=directory / "state")
    began = time.monotonic()
    env.up()
    try:
        ready = time.monotonic() - began
        db, lb = env["db"], env["lb"]
        assert isinstance(db, PatroniService) and isinstance(lb, HAProxyService)
        with psycopg.connect(lb.primary_url, autocommit=True) as conn:
            conn.execute("CREATE TABLE bench (id serial PRIMARY KEY, at timestamptz)")
        old = db.leader()
        assert old is not None, "no leader after ready"
        survivors = [m for m in db.members if m.name != old.name]
        for member in survivors:  # replication is asynchronous: wait for the table
            wait_for(functools.partial(_has_table, member.url), 10)
        promoted: list[float] = []
        stop = threading.Event()

        def watch_promotion() -> None:
            # pg_is_in_recovery() on each surviving member, on a connection kept open.
            conns: dict[str, psycopg.Connection[object]] = {}
            while not stop.is_set() and not promoted:
                for member in survivors:
                    try:
                        if member.name not in conns:
                            conns[member.name] = psycopg.connect(member.url, autocommit=True,
                                                                 connect_timeout=1)
                        row = conns[member.name].execute("SELECT pg_is_in_recovery()").fetchone()
                        if row == (False,):
                            promoted.append(time.monotonic())
                            break
                    except psycopg.Error:
                        conns.pop(member.name, None)
                time.sleep(0.005)
            for conn in conns.values():
                conn.close()

        watcher = threading.Thread(target=watch_promotion, daemon=True)
        killed = time.monotonic()
        db.kill(old.name)
        watcher.start()
        deadline = killed + timing["ttl"] * 3 + 30
        while True:
            try:
                with psycopg.connect(lb.primary_url, autocommit=True, connect_timeout=1) as conn:
                    conn.execute("INSERT INTO bench (at) VALUES (now())")
                written = time.monotonic()
                break
            except psycopg.Error:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        "no write succeeded through HAProxy after the failover") from None
                time.sleep(0.01)
        watcher.join(timeout=5)
        stop.set()
        promotion = (promoted[0] if promoted else written) - killed
        return Run(ready=ready, failover=written - killed, promotion=promotion)
    finally:
        env.down()


def _has_table(url: str) -> bool:
    with psycopg.connect(url, autocommit=True, connect_timeout=1) as conn:
        return conn.execute("SELECT to_regclass('bench') IS NOT NULL").fetchone() == (True,)


def wait_for(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError("a replica did not receive the benchmark table")
        time.sleep(0.01)


def stats(values: list[float]) -> str:
    return (f"min {min(values):6.2f}  median {statistics.median(values):6.2f}  "
            f"max {max(values):6.2f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--skip-defaults", action="store_true",
                        help="measure only shakedown's timing, not Patroni's defaults")
    args = parser.parse_args()
    configs = {k: v for k, v in CONFIGS.items()
               if not (args.skip_defaults and k == "patroni-defaults")}
    results: list[Result] = []
    with tempfile.TemporaryDirectory(prefix="shakedown-bench-ha-") as tmp:
        for name, timing in configs.items():
            result = Result(name=name, ttl=timing["ttl"])
            for index in range(args.runs):
                run = one_run(Path(tmp), timing, index)
                result.runs.append(run)
                print(f"{name:17s} run {index + 1}: ready {run.ready:5.2f}s  failover "
                      f"{run.failover:5.2f}s  (promotion {run.promotion:5.2f}s, HAProxy "
                      f"routing {run.routing:4.2f}s)", flush=True)
            results.append(result)

    print()
    print(f"{args.runs} run(s) each; cluster = etcd (1 member) + Patroni (3 members) + HAProxy")
    failed = []
    for result in results:
        ready = [r.ready for r in result.runs]
        failover = [r.failover for r in result.runs]
        routing = [r.routing for r in result.runs]
        print(f"\n{result.name} ({', '.join(f'{k} {v}' for k, v in CONFIGS[result.name].items())})")
        print(f"  cluster ready      {stats(ready)}  s")
        print(f"  failover (kill -> write through HAProxy)  {stats(failover)}  s")
        print(f"  promotion (kill -> new primary)           "
              f"{stats([r.promotion for r in result.runs])}  s")
        print(f"  HAProxy routing after promotion           {stats(routing)}  s")
        if result.name == "shakedown":
            checks = [
                ("cluster ready <= 4 s", max(ready), READY_TARGET),
                (f"failover <= ttl + 2 s = {result.ttl + 2} s", max(failover), result.ttl + 2),
                ("HAProxy routing <= 1 s after promotion", max(routing), ROUTING_TARGET),
            ]
            for label, worst, target in checks:
                verdict = "met" if worst <= target else "MISSED"
                print(f"  target {label}: worst {worst:.2f} s ({worst / target:.0%} of the "
                      f"target) -> {verdict}")
                if worst > target:
                    failed.append(label)
    if len(results) == 2:
        fast, slow = results
        ready_ratio = (statistics.median(r.ready for r in slow.runs)
                       / statistics.median(r.ready for r in fast.runs))
        failover_ratio = (statistics.median(r.failover for r in slow.runs)
                          / statistics.median(r.failover for r in fast.runs))
        print(f"\nPatroni defaults / shakedown (medians): ready x{ready_ratio:.2f}, "
              f"failover x{failover_ratio:.2f}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
