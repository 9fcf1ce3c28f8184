"""Benchmark of the high-availability kinds: how long an etcd + 3-member Patroni + HAProxy
cluster takes to be ready, and how long a failover takes after the leader member is killed
(SIGKILL of Patroni and its postgres) until a write through HAProxy's primary port succeeds.

Measured in the same run:
- ``shakedown``: the kind as it is (fast start, ttl 20 / loop_wait 1 / retry_timeout 5);
- ``patroni-defaults``: the same with Patroni's own timing (ttl 30 / loop_wait 10 /
  retry_timeout 10);
- ``plain-bootstrap`` (ready only): shakedown's timing, but Patroni bootstraps the way it does
  by default — a real initdb on the first member, pg_basebackup for the others, every member
  started at once, slots created on the leader's next HA cycle — to show what the fast start
  saves.

    .venv/bin/python bench/ha.py [--runs 3] [--only shakedown]

Targets: cluster ready <= 4 s; failover <= ttl + 2 s; HAProxy routes writes to the new primary
within 1 s of its promotion (pg_is_in_recovery() turning false on it). Exit status 1 when
shakedown's figures miss a target."""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import statistics
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

import shakedown.services.kinds.postgres.patroni as patroni_kind
from shakedown.environment import Environment
from shakedown.services import HAProxyService, PatroniService

TOPOLOGY = """
[services.kv]
kind = "etcd"

[services.db]
kind = "postgres-ha"
etcd = "kv"
members = 3
{timing}

[services.lb]
kind = "haproxy"
backend = "db"
"""
FAST = {"ttl": 20, "loop_wait": 1, "retry_timeout": 5}
PATRONI_DEFAULTS = {"ttl": 30, "loop_wait": 10, "retry_timeout": 10}
READY_TARGET = 4.0
ROUTING_TARGET = 1.0


@dataclass(frozen=True)
class Config:
    name: str
    timing: dict[str, int]
    plain: bool = False  # Patroni's own bootstrap instead of shakedown's fast start
    failover: bool = True


CONFIGS = [
    Config("shakedown", FAST),
    Config("patroni-defaults", PATRONI_DEFAULTS),
    Config("plain-bootstrap", FAST, plain=True, failover=False),
]


@dataclass
class Run:
    ready: float
    services: dict[str, float]
    failover: float | None = None
    promotion: float | None = None

    @property
    def routing(self) -> float | None:
        if self.failover is None or self.promotion is None:
            return None
        return self.failover - self.promotion


@dataclass
class Result:
    config: Config
    runs: list[Run] = field(default_factory=list)

    def values(self, attribute: str) -> list[float]:
        found = [getattr(run, attribute) for run in self.runs]
        return [value for value in found if value is not None]


@contextlib.contextmanager
def plain_bootstrap() -> Iterator[None]:
    """Patroni's default bootstrap: initdb, basebackup, all members at once, no early slots."""
    cls = PatroniService
    saved = (cls._config, cls.start, cls._create_slots, patroni_kind.copy_tree)  # type: ignore[attr-defined]

    def config(self: PatroniService, index: int, initdb: Path) -> dict[str, Any]:
        result = saved[0](self, index, initdb)
        postgresql = result["postgresql"]
        del postgresql["bin_name"], postgresql["shakedown_copy"]
        postgresql["create_replica_methods"] = ["basebackup"]
        result["bootstrap"]["initdb"] = ["encoding=UTF8", "locale=C.UTF-8"]
        return result

    def start(self: PatroniService) -> None:
        self.processes = [self._spawn_member(i) for i in range(self.member_count)]

    patches: list[tuple[object, str, object]] = [
        (cls, "_config", config), (cls, "start", start),
        (cls, "_create_slots", lambda self, leader: None),
        (patroni_kind, "copy_tree", lambda *args, **kwargs: None),  # no staged copies
    ]
    for target, name, value in patches:
        setattr(target, name, value)
    try:
        yield
    finally:
        for (target, name, _), value in zip(patches, saved, strict=True):
            setattr(target, name, value)


def one_run(directory: Path, config: Config, index: int) -> Run:
    text = TOPOLOGY.format(timing="\n".join(f"{k} = {v}" for k, v in config.timing.items()))
    path = directory / f"{config.name}-{index}.toml"
    path.write_text(textwrap.dedent(text))
    env = Environment.from_file(path, name=f"bench-ha-{index}", state_root=directory / "state")
    began = time.monotonic()
    with plain_bootstrap() if config.plain else contextlib.nullcontext():
        env.up()
    try:
        run = Run(ready=time.monotonic() - began, services=env.measurements())
        if config.failover:
            run.failover, run.promotion = failover(env, config.timing["ttl"])
        return run
    finally:
        env.down()


def failover(env: Environment, ttl: int) -> tuple[float, float | None]:
    """SIGKILL the leader member; seconds until a write through HAProxy's primary port
    succeeds, and until a new primary was seen (None when the watcher saw none: then HAProxy's
    routing after the promotion was not measured, and is never reported as met)."""
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
        conns: dict[str, psycopg.Connection[Any]] = {}
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
    deadline = killed + ttl * 3 + 30
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
    return written - killed, (promoted[0] - killed) if promoted else None


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
    if not values:
        return "not measured"
    return (f"min {min(values):6.2f}  median {statistics.median(values):6.2f}  "
            f"max {max(values):6.2f}")


def describe(run: Run) -> str:
    parts = " + ".join(f"{k.removesuffix('.ready')} {v:.2f}" for k, v in run.services.items())
    text = f"ready {run.ready:5.2f}s ({parts})"
    if run.failover is not None and run.promotion is None:
        text += f"  failover {run.failover:5.2f}s (no promotion seen: routing not measured)"
    if run.failover is not None and run.promotion is not None and run.routing is not None:
        text += (f"  failover {run.failover:5.2f}s (promotion {run.promotion:5.2f}s, "
                 f"HAProxy routing {run.routing:+.2f}s)")
    return text


def report(results: list[Result]) -> list[str]:
    """Print the summary; return the targets shakedown missed."""
    missed = []
    for result in results:
        config = result.config
        timing = ", ".join(f"{k} {v}" for k, v in config.timing.items())
        print(f"\n{config.name} ({timing}{', initdb + basebackup' if config.plain else ''})")
        print(f"  cluster ready                             {stats(result.values('ready'))}  s")
        if config.failover:
            print(f"  failover (kill -> write through HAProxy)  "
                  f"{stats(result.values('failover'))}  s")
            print(f"  promotion (kill -> new primary)           "
                  f"{stats(result.values('promotion'))}  s")
            print(f"  HAProxy routing after promotion           "
                  f"{stats(result.values('routing'))}  s")
        if config.name != "shakedown":
            continue
        checks = [("cluster ready <= 4 s", max(result.values("ready")), READY_TARGET)]
        if config.failover:
            ttl = config.timing["ttl"]
            checks.append((f"failover <= ttl + 2 s = {ttl + 2} s",
                           max(result.values("failover")), ttl + 2.0))
            unseen = sum(1 for run in result.runs if run.promotion is None)
            if unseen:  # a routing time needs the promotion it is measured from
                label = "HAProxy routing <= 1 s after promotion"
                print(f"  target {label}: NOT MEASURED (no promotion seen in {unseen} of "
                      f"{len(result.runs)} runs) -> MISSED")
                missed.append(label)
            else:
                checks.append(("HAProxy routing <= 1 s after promotion",
                               max(result.values("routing")), ROUTING_TARGET))
        for label, worst, target in checks:
            verdict = "met" if worst <= target else "MISSED"
            print(f"  target {label}: worst {worst:.2f} s ({worst / target:.0%} of the target)"
                  f" -> {verdict}")
            if worst > target:
                missed.append(label)
    by_name = {r.config.name: r for r in results}
    fast = by_name.get("shakedown")
    if fast is not None:
        print()
        for other in results:
            if other is fast:
                continue
            ratios = [f"ready x{_ratio(other, fast, 'ready'):.2f}"]
            if other.config.failover:
                ratios.append(f"failover x{_ratio(other, fast, 'failover'):.2f}")
            print(f"{other.config.name} / shakedown (medians): {', '.join(ratios)}")
    return missed


def _ratio(slow: Result, fast: Result, attribute: str) -> float:
    return statistics.median(slow.values(attribute)) / statistics.median(fast.values(attribute))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=[c.name for c in CONFIGS], action="append",
                        help="measure only these configurations (repeatable)")
    args = parser.parse_args()
    configs = [c for c in CONFIGS if not args.only or c.name in args.only]
    results: list[Result] = []
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="shakedown-bench-ha-") as tmp:
        for config in configs:
            result = Result(config)
            for index in range(args.runs):
                run = one_run(Path(tmp), config, index)
                result.runs.append(run)
                print(f"{config.name:17s} run {index + 1}: {describe(run)}", flush=True)
            results.append(result)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print(f"\n{args.runs} run(s) each; cluster = etcd (1 member) + Patroni (3 members) + HAProxy")
    return 1 if report(results) else 0


if __name__ == "__main__":
    sys.exit(main())
