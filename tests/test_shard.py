"""Sharding (issue 21): the planner on its own (every test once, deterministic, environments
kept together when that is cheaper, balanced by durations), then real pytest runs with Redis
environments: 3 shards in parallel whose union is the unsharded suite, merged into one run,
and xdist workers grouped by environment (environment starts counted before and after)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from bounds import hang_bound
from shakedown.pytest_plugin._plan import PlannedTest, plan

# -- the planner -----------------------------------------------------------------------------


def _suite() -> list[PlannedTest]:
    """Three modules sharing module environments of one topology, a session environment
    used by two more, and tests with no environment."""
    tests = [PlannedTest(f"test_{m}.py::test_{i}", f"test_{m}.py", f"t.toml::module::{m}",
                         "t.toml") for m in "abc" for i in range(4)]
    tests += [PlannedTest(f"test_s{m}.py::test_{i}", f"test_s{m}.py", "s.toml::session",
                          "s.toml") for m in "12" for i in range(3)]
    tests += [PlannedTest(f"test_plain.py::test_{i}", "test_plain.py") for i in range(5)]
    return tests


def _cost(nodeids: list[str], tests: list[PlannedTest], seconds: dict[str, float],
          envs: dict[str, float]) -> float:
    """A shard's load computed here, not by the planner: its tests plus one start + stop of
    every environment it needs."""
    chosen = [t for t in tests if t.nodeid in nodeids]
    needed = {(t.env, t.topology) for t in chosen if t.env}
    return sum(seconds[t.nodeid] for t in chosen) + sum(envs[str(top)] for _, top in needed)


def test_every_test_lands_in_exactly_one_bin_whatever_the_order() -> None:
    tests = _suite()
    seconds = {t.nodeid: 0.5 + (i % 7) * 0.3 for i, t in enumerate(tests)}
    envs = {"t.toml": 4.0, "s.toml": 2.0}
    first = plan(tests, 3, seconds, envs)
    shuffled = list(tests)
    random.Random(7).shuffle(shuffled)
    again = plan(shuffled, 3, seconds, envs)
    assert first.bins == again.bins
    placed = [n for b in first.bins for n in b]
    assert sorted(placed) == sorted(t.nodeid for t in tests)
    assert len(placed) == len(set(placed))
    for nodeids, load in zip(first.bins, first.loads, strict=True):
        assert load == pytest.approx(_cost(nodeids, tests, seconds, envs))


def test_without_durations_whole_modules_split_by_test_count() -> None:
    tests = _suite()
    result = plan(tests, 3, {}, {})
    assert not result.by_duration
    for nodeids in result.bins:
        modules = {n.split("::")[0] for n in nodeids}
        for module in modules:  # a module is never split
            assert all(n in nodeids for t in tests if t.module == module for n in [t.nodeid])
    assert sorted(len(b) for b in result.bins) == [7, 8, 8]


def test_an_expensive_environment_stays_on_one_bin() -> None:
    """Splitting a 30 s environment's 4 quick tests would start it twice: never cheaper."""
    tests = [PlannedTest(f"test_x.py::test_{i}", "test_x.py", "x::session", "x")
             for i in range(4)]
    result = plan(tests, 2, {t.nodeid: 1.0 for t in tests}, {"x": 30.0})
    assert sorted(len(b) for b in result.bins) == [0, 4]
    assert max(result.loads) == pytest.approx(34.0)


def test_a_cheap_environment_is_split_to_balance() -> None:
    """One environment (2 s) whose 6 tests take 10 s each: two bins halve the time."""
    tests = [PlannedTest(f"test_x.py::test_{i}", "test_x.py", "x::session", "x")
             for i in range(6)]
    result = plan(tests, 2, {t.nodeid: 10.0 for t in tests}, {"x": 2.0})
    assert sorted(len(b) for b in result.bins) == [3, 3]
    assert result.loads == [pytest.approx(32.0), pytest.approx(32.0)]


def test_balanced_within_a_quarter_of_the_mean() -> None:
    tests = _suite()
    rng = random.Random(3)
    seconds = {t.nodeid: rng.uniform(0.5, 6.0) for t in tests}
    envs = {"t.toml": 5.0, "s.toml": 3.0}
    for bins in (2, 3, 4):
        result = plan(tests, bins, seconds, envs)
        costs = [_cost(b, tests, seconds, envs) for b in result.bins]
        assert max(costs) <= 1.25 * (sum(costs) / bins), (bins, costs)


def test_unknown_tests_cost_the_mean_of_known_ones() -> None:
    tests = [PlannedTest(f"m{i}.py::t", f"m{i}.py") for i in range(4)]
    result = plan(tests, 2, {"m0.py::t": 9.0, "m1.py::t": 1.0}, {})
    assert sorted(result.loads) == [pytest.approx(10.0), pytest.approx(10.0)]


def test_bins_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        plan(_suite(), 0, {}, {})


# -- real runs -------------------------------------------------------------------------------
TOPOLOGY = '[services.cache]\nkind = "redis"\n'
MODULE = """
import pytest
import redis
pytestmark = pytest.mark.shakedown(scope="module")

@pytest.mark.parametrize("n", range({count}))
def test_cache(shakedown_env, n):
    redis.Redis.from_url(shakedown_env["cache"].url).set("k{module}", n)
"""
SESSION = """
import redis

def test_session_one(shakedown_env):
    assert redis.Redis.from_url(shakedown_env["cache"].url).ping()

def test_session_two(shakedown_env):
    assert redis.Redis.from_url(shakedown_env["cache"].url).ping()

def test_plain():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> Path:
    pytester.makefile(".toml", shakedown=TOPOLOGY)
    for module, count in (("a", 4), ("b", 3), ("c", 2)):
        pytester.makepyfile(**{f"test_{module}": MODULE.format(count=count, module=module)})
    pytester.makepyfile(test_session=SESSION)
    return pytester.path


def _pytest(directory: Path, *args: str) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_XDIST")}
    env.pop("SHAKEDOWN_RUN_ID", None)
    return subprocess.Popen([sys.executable, "-m", "pytest", "-p", "no:cacheprovider",
                             "-p", "no:randomly", "-q", *args], cwd=directory, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _finish(process: subprocess.Popen[str]) -> str:
    try:
        out, _ = process.communicate(timeout=hang_bound(240))
    except subprocess.TimeoutExpired:
        process.kill()  # a hang: nothing left behind (the environments are its children)
        process.communicate()
        raise
    assert process.returncode == 0, out
    return out


def collected_ids(directory: Path, *args: str) -> list[str]:
    out = _finish(_pytest(directory, "--collect-only", *args))
    return sorted(line for line in out.splitlines() if "::" in line)


def _runs(directory: Path) -> dict[str, dict]:  # type: ignore[type-arg]
    return {p.parent.name: json.loads(p.read_text())
            for p in (directory / ".shakedown" / "runs").glob("*/results.json")}


def run_shards(directory: Path, count: int, *extra: str) -> dict[str, dict]:  # type: ignore[type-arg]
    before = set(_runs(directory))
    shards = [_pytest(directory, f"--shakedown-shard={k}/{count}", *extra)
              for k in range(1, count + 1)]
    for shard in shards:
        _finish(shard)
    return {k: v for k, v in _runs(directory).items() if k not in before}


@pytest.mark.timeout(hang_bound(600))
def test_three_parallel_shards_run_the_suite_once(suite: Path) -> None:
    expected = collected_ids(suite)
    runs = run_shards(suite, 3)
    ran = [t["nodeid"] for r in runs.values() for t in r["tests"]]
    assert sorted(ran) == expected  # the union is the suite, each test once
    labels = sorted(r["shard"]["label"] for r in runs.values())
    assert labels == ["1/3", "2/3", "3/3"]
    for results in runs.values():  # without history: whole modules per shard
        modules = {t["nodeid"].split("::")[0] for t in results["tests"]}
        assert all(t["shard"] == results["shard"]["label"] for t in results["tests"])
        for module in modules:
            assert {n for n in expected if n.startswith(module)} <= set(ran)
    assert not (suite / ".shakedown" / "history.db").exists() or _history_runs(suite) == 0
    merged = _merge(suite, list(runs))
    assert sorted(t["nodeid"] for t in merged["tests"]) == expected
    assert {t["shard"] for t in merged["tests"]} <= {"1/3", "2/3", "3/3"}
    assert sorted(s["label"] for s in merged["shard"]["merged"]) == ["1/3", "2/3", "3/3"]
    assert {e["shard"] for e in merged["environments"]} <= {"1/3", "2/3", "3/3"}
    assert all(e["start_s"] > 0 for e in merged["environments"])
    run_dir = suite / ".shakedown" / "runs" / merged["run_id"]
    html = (run_dir / "report.html").read_text()
    for nodeid in expected:  # each test once in the report, its shard shown
        assert html.count(f'data-nodeid="{nodeid}"') == 1, nodeid
    assert html.count('class="shard">shard ') == len(expected)
    assert len(list((run_dir / "histories").glob("*.jsonl"))) == len(merged["environments"])
    assert _history_runs(suite) == 1  # the merged run, once
    exported = _shakedown(suite, "durations")
    durations = json.loads(exported.stdout)
    assert set(expected) <= set(durations)
    assert durations["shakedown-env::shakedown.toml"] > 0
    # the exported file plans the next sharded run; that run's union is the suite again
    (suite / "durations.json").write_text(exported.stdout)
    again = [collected_ids(suite, f"--shakedown-shard={k}/3", "--shakedown-durations="
                           "durations.json") for k in (1, 2, 3)]
    assert sorted(n for ids in again for n in ids) == expected


def _shakedown(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shakedown", *args], cwd=directory,
                          capture_output=True, text=True, timeout=hang_bound(120), check=False)


def _merge(directory: Path, run_ids: list[str]) -> dict:  # type: ignore[type-arg]
    done = _shakedown(directory, "merge", *(f".shakedown/runs/{r}" for r in run_ids))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"merged {len(run_ids)} runs" in done.stdout
    run_dir = Path(done.stdout.split("run: ")[1].split()[0])
    return json.loads((directory / run_dir / "results.json").read_text())  # type: ignore[no-any-return]


def test_merge_refuses_overlapping_or_missing_runs(suite: Path) -> None:
    runs = run_shards(suite, 1)
    (only,) = runs
    copy = suite / ".shakedown" / "runs" / "copy"
    copy.mkdir()
    (copy / "results.json").write_text(
        (suite / ".shakedown" / "runs" / only / "results.json").read_text())
    done = _shakedown(suite, "merge", f".shakedown/runs/{only}", str(copy))
    assert done.returncode == 2, done.stdout + done.stderr
    assert "ran in two of the runs given" in done.stderr
    missing = _shakedown(suite, "merge", "no-such-run")
    assert missing.returncode == 2
    assert "no results.json in no-such-run" in missing.stderr
    assert not [p for p in (suite / ".shakedown" / "runs").iterdir()
                if p.name.startswith("merged-")]  # nothing left behind


def _starts(directory: Path, run: dict) -> dict[str, int]:  # type: ignore[type-arg]
    """Environment starts per module (each environment's timing file names its tests)."""
    run_dir = directory / ".shakedown" / "runs" / run["run_id"]
    starts: dict[str, int] = {}
    for timing in (run_dir / "environments").glob("*.json"):
        data = json.loads(timing.read_text())
        module = data["tests"][0].split("::")[0]
        starts[module] = starts.get(module, 0) + 1
    return starts


@pytest.mark.timeout(hang_bound(600))
def test_xdist_workers_grouped_by_environment(pytester: pytest.Pytester) -> None:
    """Two modules of 4 tests with module environments on 2 workers: xdist's load
    distribution starts module a's environment on both workers (it deals the first tests
    round robin); grouped, each module's environment starts once."""
    pytester.makefile(".toml", shakedown=TOPOLOGY)
    for module in "ab":
        pytester.makepyfile(**{f"test_{module}": MODULE.format(count=4, module=module)
                               .replace("    redis", "    import time; time.sleep(0.3)\n"
                                                     "    redis")})
    directory = pytester.path
    counted = {}
    for label, extra in (("before", ("--shakedown-no-group",)), ("after", ())):
        known = set(_runs(directory))
        _finish(_pytest(directory, "-n", "2", *extra))
        (run,) = [r for k, r in _runs(directory).items() if k not in known]
        assert len(run["tests"]) == 8 and all(t["outcome"] == "passed" for t in run["tests"])
        counted[label] = _starts(directory, run)
    print("environment starts with -n 2:", counted)
    assert counted["before"]["test_a.py"] == 2
    assert counted["after"] == {"test_a.py": 1, "test_b.py": 1}


def _history_runs(directory: Path) -> int:
    import sqlite3

    with sqlite3.connect(directory / ".shakedown" / "history.db") as conn:
        return int(conn.execute("SELECT count(*) FROM runs").fetchone()[0])


def test_a_bad_shard_is_one_clear_usage_error(suite: Path) -> None:
    for bad in ("4/3", "0/2", "x", "1/0"):
        process = _pytest(suite, f"--shakedown-shard={bad}")
        out, _ = process.communicate(timeout=hang_bound(60))
        assert process.returncode == 4, out
        assert "expected K/N with whole numbers 1 <= K <= N" in out
    assert not (suite / ".shakedown" / "envs").exists() or not list(
        (suite / ".shakedown" / "envs").iterdir())


def test_a_missing_durations_file_is_a_usage_error(suite: Path) -> None:
    process = _pytest(suite, "--shakedown-shard=1/2", "--shakedown-durations=nope.json")
    out, _ = process.communicate(timeout=hang_bound(60))
    assert process.returncode == 4, out
    assert "--shakedown-durations nope.json: no such file" in out
    assert "shakedown durations > nope.json" in out


def test_durations_file_plans_the_shards(suite: Path) -> None:
    """Hand-made durations: module a's tests are slow, so a is split across shards and the
    planned loads are balanced; the shards report the plan in results.json."""
    durations = {f"test_a.py::test_cache[{i}]": 20.0 for i in range(4)}
    durations.update({n: 1.0 for n in collected_ids(suite) if not n.startswith("test_a.py")})
    durations["shakedown-env::shakedown.toml"] = 1.0
    (suite / "durations.json").write_text(json.dumps(durations))
    runs = run_shards(suite, 2, "--shakedown-durations=durations.json")
    ran = sorted(t["nodeid"] for r in runs.values() for t in r["tests"])
    assert ran == collected_ids(suite)
    a_shards = {r["shard"]["label"] for r in runs.values() for t in r["tests"]
                if t["nodeid"].startswith("test_a.py")}
    assert a_shards == {"1/2", "2/2"}  # 80 s of module a is worth a second start
    loads = next(iter(runs.values()))["shard"]["planned_s"]
    assert max(loads) <= 1.25 * sum(loads) / len(loads)
