"""A seeded fault schedule over the failover workload (issue 20 item 4): the set workload
(``append``: unique ids inserted through HAProxy's primary port) runs while
``faults.schedule`` draws kills and pauses of the leader and of a replica for a bounded time,
everything healed at the end; then a final read on the primary and the ``set`` checker
(acknowledged writes lost?). The schedule's steps are read back from the history, so two runs
with one seed can be compared fault by fault. Shared by test_chaos.py and bench/chaos_ha.py;
service names come from the topology (by kind)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shakedown import eventually
from shakedown.checkers import Result, record_check, set_full
from shakedown.environment import Environment
from shakedown.history import NEMESIS, History, record_final
from shakedown.workloads import Runner
from shakedown.workloads.postgres import PgOptions, append

FAMILIES = ("kill", "pause")
FAST = PgOptions(connect_timeout_s=1, statement_timeout_s=2.0, op_timeout_s=3.0)
STEP_KEYS = ("step", "at", "lasting", "family", "target")


@dataclass(frozen=True)
class Chaos:
    """One run: the seed, the steps the schedule took (from the history), the set verdict."""

    seed: int
    steps: list[tuple[Any, ...]]
    errors: list[str]
    result: Result

    @property
    def lost(self) -> int:
        return self.result.counts.get("lost", 0)

    def line(self) -> str:
        counts = self.result.counts
        return (f"seed {self.seed}: {len(self.steps)} faults ({len(self.errors)} not applied), "
                f"set {self.result.validity}: ok {counts.get('ok', 0)}, lost {self.lost}, "
                f"indeterminate {counts.get('indeterminate', 0)}")


def db_and_lb(env: Environment) -> tuple[str, str]:
    kinds = {env[name].kind: name for name in env}
    return kinds["postgres-ha"], kinds["haproxy"]


def run(env: Environment, seed: int, seconds: float, *, rate: float = 150.0,
        workers: int = 4) -> Chaos:
    """The workload under the schedule for ``seconds``; then heal, settle, read, check."""
    db, lb = db_and_lb(env)
    url, log = env[lb].primary_url, env.history
    start = len(log)
    append.setup(url)
    clients = lambda _w: append.AppendClient(url, options=FAST)  # noqa: E731
    with Runner(clients, append.generator(rate=rate), concurrency=workers, history=log) as w:
        with env.faults.schedule(FAMILIES, seed=seed, duration=seconds, every=(1.0, 3.0),
                                 lasting=(1.0, 4.0),
                                 targets=[f"leader:{db}", f"replica:{db}"]) as nemesis:
            nemesis.wait()
        w.stop()
    w.join()
    env[db].wait_leader(timeout=60)
    final = eventually(lambda: append.final_read(url), timeout=60, interval=0.5,
                       description="a final read on the primary")
    record_final(log, "final-read", sorted(final))
    mine = History(ops=[op for op in log.ops() if op.index >= start])
    result = set_full(mine, final)
    record_check(log, "set", result)
    return Chaos(seed, steps_of(mine), list(nemesis.errors), result)


def steps_of(history: History) -> list[tuple[Any, ...]]:
    """The schedule's steps as the history recorded them (applied or not), in order."""
    return [tuple(op.value.get(k) for k in STEP_KEYS) for op in history.ops()
            if op.process == NEMESIS and op.f == "schedule-step"]
