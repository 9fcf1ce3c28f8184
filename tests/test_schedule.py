"""Fault schedules: the plan as a pure function of the seed (hand-checked properties), then real
schedules over PostgreSQL, Redis and a process behind the fault proxy: every step recorded and
healed, the same seed replaying the same faults, a failing block still healed, bad input."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from shakedown import Environment
from shakedown.errors import FaultError
from shakedown.faults import Bounds, Candidates, Step, plan
from shakedown.history import NEMESIS

TOPOLOGY = """
[services.db]
kind = "postgres"

[services.cache]
kind = "redis"

[services.app]
kind = "process"
command = ["{python}", "-m", "http.server", "{port}", "--bind", "127.0.0.1"]
env = { DATABASE_URL = "{db.url}" }

[links.app-db]
from = "app"
to = "db"

[links.app-cache]
from = "app"
to = "cache"
"""

CANDIDATES = Candidates(killable=("app", "cache", "db"), pausable=("app", "cache", "db"),
                        clusters=("db",), services=("app", "cache", "db"),
                        isolatable=("app", "cache", "db"), links=("app-cache", "app-db"))
FAST = Bounds(every=(0.1, 0.3), lasting=(0.2, 0.4))


def steps(seed: int, families: tuple[str, ...], n: int = 30,
          candidates: Candidates = CANDIDATES, bounds: Bounds = FAST) -> list[Step]:
    return list(itertools.islice(plan(seed, families, candidates, bounds), n))


# -- the plan, without an environment ------------------------------------------------------------
def test_the_same_seed_gives_the_same_plan_and_another_seed_another() -> None:
    families = ("kill", "pause", "partition", "latency", "restart")
    first, again = steps(7, families), steps(7, families)
    assert [s.key() for s in first] == [s.key() for s in again]
    assert [s.key() for s in steps(8, families)] != [s.key() for s in first]


def test_steps_come_one_at_a_time_within_their_bounds() -> None:
    planned = steps(3, ("kill", "pause", "latency", "bandwidth", "restart"), n=200)
    for before, after in itertools.pairwise(planned):
        gap = after.at - (before.at + before.lasting)
        assert 0.1 - 1e-6 <= gap <= 0.3 + 1e-6, (before, after)
    for step in planned:
        if step.family == "restart":
            assert step.lasting == 0
        else:
            assert 0.2 - 1e-6 <= step.lasting <= 0.4 + 1e-6
        if step.family == "latency":
            assert 50 <= step.params["ms"] <= 500
        if step.family == "bandwidth":
            assert 16 <= step.params["kbps"] <= 256
    assert {s.family for s in planned} == {"kill", "pause", "latency", "bandwidth", "restart"}


def test_targets_come_from_the_candidates_with_cluster_selectors() -> None:
    planned = steps(11, ("kill", "isolate", "latency"), n=300)
    kill = {s.target for s in planned if s.family == "kill"}
    assert kill == {"app", "cache", "db", "leader:db", "replica:db"}
    assert {s.target for s in planned if s.family == "latency"} == {"app-cache", "app-db"}
    assert {s.target for s in planned if s.family == "isolate"} == \
        {"app", "cache", "db", "leader:db"}
    assert all("rank" in s.params for s in planned if s.target == "replica:db")


def test_targets_can_be_narrowed_to_selectors() -> None:
    planned = list(itertools.islice(plan(2, ("kill", "pause", "latency"), CANDIDATES, FAST,
                                         targets=("leader:db", "app-db")), 100))
    assert {(s.family, s.target) for s in planned} == \
        {("kill", "leader:db"), ("pause", "leader:db"), ("latency", "app-db")}
    with pytest.raises(FaultError, match="'latency' has nothing to act on"):
        list(itertools.islice(plan(1, ("latency",), CANDIDATES, FAST,
                                   targets=("leader:db",)), 1))


def test_partition_halves_are_proper_subsets() -> None:
    sides = [set(s.params["side"]) for s in steps(5, ("partition",), n=100)]
    everything = set(CANDIDATES.services)
    assert all(side and side < everything for side in sides)
    assert len({frozenset(side) for side in sides}) > 2  # not always the same cut


@pytest.mark.parametrize(("families", "candidates", "message"), [
    (("explode",), CANDIDATES, "unknown fault family 'explode'"),
    (("kil",), CANDIDATES, "did you mean 'kill'"),
    (("latency",), Candidates(killable=("db",)), "'latency' has nothing to act on"),
    (("partition",), Candidates(services=("db",), links=("x",)), "'partition' has nothing"),
    ((), CANDIDATES, "at least one fault family"),
])
def test_bad_families_are_refused(families: tuple[str, ...], candidates: Candidates,
                                  message: str) -> None:
    with pytest.raises(FaultError, match=message):
        steps(1, families, candidates=candidates)


def test_bad_bounds_are_refused() -> None:
    with pytest.raises(FaultError, match="lasting"):
        Bounds(lasting=(2.0, 1.0)).check()
    with pytest.raises(FaultError, match="every"):
        Bounds(every=(-1.0, 1.0)).check()


# -- real schedules ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Environment]:
    directory = tmp_path_factory.mktemp("schedule")
    (directory / "shakedown.toml").write_text(TOPOLOGY)
    with Environment.from_file(directory / "shakedown.toml") as environment:
        yield environment


@pytest.fixture(autouse=True)
def healed(env: Environment) -> Iterator[None]:
    yield
    env.faults.heal()


FAMILIES = ("kill", "pause", "restart", "partition", "isolate", "latency")


def nemesis_ops(env: Environment, since: int) -> list[Any]:
    return [op for op in env.history.ops()[since:] if op.process == NEMESIS]


def run_schedule(env: Environment, seed: int) -> list[Any]:
    since = len(env.history.ops())
    with env.faults.schedule(FAMILIES, seed=seed, duration=3.0, every=(0.1, 0.3),
                             lasting=(0.2, 0.4)) as nemesis:
        nemesis.wait()
    assert not nemesis.errors, nemesis.errors
    return nemesis_ops(env, since)


def assert_all_running(env: Environment) -> None:
    assert {name: env[name].status() for name in ("db", "cache", "app")} == \
        dict.fromkeys(("db", "cache", "app"), "running")
    assert env.faults.active() == []
    assert env.proxy().toxics("app-db") == []  # type: ignore[union-attr]
    with psycopg.connect(env["db"].url, connect_timeout=5) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_schedule_runs_its_plan_and_ends_healed(env: Environment) -> None:
    ops = run_schedule(env, seed=42)
    start = next(op for op in ops if op.f == "schedule-start")
    assert start.value["seed"] == 42
    recorded = [op.value for op in ops if op.f == "schedule-step"]
    planned = [s for s in steps(42, FAMILIES, n=100, candidates=env.faults.candidates())
               if s.at + s.lasting <= 3.0]
    assert [(v["step"], v["family"], v["target"]) for v in recorded] == \
        [(s.index, s.family, s.target) for s in planned]
    assert len(recorded) >= 5
    started = {op.value["id"] for op in ops if op.f == "fault-start"}
    ended = {op.value["id"] for op in ops if op.f == "fault-end"}
    assert started and started == ended, "every fault of the schedule was healed"
    assert {op.value["kind"] for op in ops if op.f == "fault-start"} <= \
        {"kill", "pause", "partition", "latency"}
    assert ops[-1].f == "schedule-end" and ops[-1].value["steps"] == len(recorded)
    assert_all_running(env)


def test_the_same_seed_replays_the_same_faults(env: Environment) -> None:
    def sequence(ops: list[Any]) -> list[tuple[Any, ...]]:
        return [(v["step"], v["at"], v["family"], v["target"], v.get("resolved"),
                 v.get("side"), v.get("ms")) for v in (op.value for op in ops
                                                       if op.f == "schedule-step")]

    first, replay = sequence(run_schedule(env, seed=9)), sequence(run_schedule(env, seed=9))
    assert first == replay and first
    assert sequence(run_schedule(env, seed=10)) != first


def test_the_seed_comes_from_the_environment_variable(
        env: Environment, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("SHAKEDOWN_SEED", "1234")
    with env.faults.schedule(("latency",), duration=0.5) as nemesis:
        assert nemesis.seed == 1234
    assert "replay it with SHAKEDOWN_SEED=1234" in capsys.readouterr().err
    monkeypatch.setenv("SHAKEDOWN_SEED", "abc")
    with pytest.raises(FaultError, match="SHAKEDOWN_SEED='abc' is not an integer"):
        env.faults.schedule(("latency",))


def test_a_failing_block_still_ends_healed(env: Environment) -> None:
    with pytest.raises(RuntimeError, match="the test failed"), \
            env.faults.schedule(("kill", "pause"), seed=3, every=(0.0, 0.05),
                                lasting=(5.0, 5.0)) as nemesis:
        while not nemesis.done:  # a fault is active: fail in the middle of it
            pass
        raise RuntimeError("the test failed")
    assert_all_running(env)


def test_bad_schedules_change_nothing(env: Environment, tmp_path: Path) -> None:
    since = len(env.history.ops())
    with pytest.raises(FaultError, match="unknown fault family 'fire'"):
        env.faults.schedule(("fire",))
    with pytest.raises(FaultError, match="every"):
        env.faults.schedule(("kill",), every=(3.0, 1.0))
    assert nemesis_ops(env, since) == []
