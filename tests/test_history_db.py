"""The run history (.shakedown/history.db): runs written and read back, trends, pass rates and
flips, regressions against the median of recent comparable runs. Synthetic runs; no servers."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from shakedown.reports import (
    HistoryDB,
    Policy,
    StoredRun,
    compare,
    flips,
    git_commit,
    pass_rate,
    regressions,
)

NODE = "test_app.py::test_save"


def make_run(tmp_path: Path, run_id: str, started: float,
             tests: list[tuple[str, str, float, dict[str, float]]], digest: str = "d1",
             targets: dict[str, str] | None = None) -> StoredRun:
    data: dict[str, Any] = {
        "run_id": run_id, "started": started, "finished": started + 1, "host": "h",
        "tests": [{"nodeid": n, "outcome": o, "duration": d, "measurements": m}
                  for n, o, d, m in tests],
        "environments": [{"name": "env", "digest": digest, "services": []}],
        "targets": targets or {},
    }
    run_dir = tmp_path / "runs" / run_id
    run_dir.mkdir(parents=True)
    return StoredRun.from_results(data, run_dir)


def seed(tmp_path: Path, db: HistoryDB, values: list[float], metric: str = "write",
         digest: str = "d1", node: str = NODE) -> None:
    for number, value in enumerate(values):
        run = make_run(tmp_path, f"r{number:03d}-{digest}-{metric}", 1000.0 + number,
                       [(node, "passed", 0.5, {metric: value})], digest)
        db.record_run(run, git_commit=None)


def test_a_run_is_written_and_read_back(tmp_path: Path) -> None:
    db = HistoryDB(tmp_path / "history.db")
    run = make_run(tmp_path, "run-1", 1000.0, [
        (NODE, "passed", 1.5, {"write": 0.120, "db.ready": 0.2}),
        ("test_app.py::test_bad", "failed", 0.1, {}),
        ("test_app.py::test_skip", "skipped", 0.0, {}),
    ])
    db.record_run(run, git_commit="a" * 40, rootdir="/project")
    (row,) = db.recent_runs()
    assert (row.run_id, row.started, row.git_commit) == ("run-1", 1000.0, "a" * 40)
    assert row.counts == {"passed": 1, "failed": 1, "skipped": 1}
    assert db.commit_of("run-1") == "a" * 40
    (point,) = db.series(NODE, "write", "d1")
    assert (point.run_id, point.value) == ("run-1", 0.120)
    assert db.series(NODE, "write", "other-topology") == []
    outcomes = {t.nodeid: t.outcomes for t in db.test_trends()}
    assert outcomes == {NODE: ("passed",), "test_app.py::test_bad": ("failed",),
                        "test_app.py::test_skip": ("skipped",)}
    with sqlite3.connect(db.path) as conn:
        assert conn.execute("SELECT topologies FROM runs").fetchone() == ('["d1"]',)
        assert conn.execute("SELECT count(*) FROM measurements").fetchone() == (2,)


def test_recording_a_run_again_replaces_it(tmp_path: Path) -> None:
    db = HistoryDB(tmp_path / "history.db")
    run = make_run(tmp_path, "run-1", 1000.0, [(NODE, "passed", 1.0, {"write": 0.1})])
    db.record_run(run, git_commit=None)
    db.record_run(run, git_commit=None)
    assert len(db.recent_runs()) == 1 and len(db.series(NODE, "write", "d1")) == 1


def test_trends_filter_by_test_or_metric_and_keep_order(tmp_path: Path) -> None:
    db = HistoryDB(tmp_path / "history.db")
    seed(tmp_path, db, [0.1, 0.2, 0.3, 0.4])
    seed(tmp_path, db, [1.0], metric="other.ready")
    (trend,) = db.metric_trends("write", last=3)
    assert trend.values == [0.2, 0.3, 0.4] and trend.last == 0.4 and trend.median == 0.3
    assert {t.metric for t in db.metric_trends("test_app")} == {"write", "other.ready"}
    assert db.metric_trends("nothing-like-this") == []


def test_a_missing_database_reads_as_empty(tmp_path: Path) -> None:
    db = HistoryDB(tmp_path / "none" / "history.db")
    assert db.series(NODE, "write", "d1") == [] and db.metric_trends() == []
    assert db.test_trends() == [] and db.recent_runs() == [] and not db.exists()


def test_git_commit_in_a_repository_and_none_outside(tmp_path: Path) -> None:
    assert git_commit(tmp_path) is None
    repo = tmp_path / "repo"
    repo.mkdir()
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid"]
    subprocess.run([*git, "init", "-q"], cwd=repo, check=True)
    (repo / "f").write_text("x")
    subprocess.run([*git, "add", "f"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "c"], cwd=repo, check=True)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True,
                          text=True, check=True).stdout.strip()
    assert git_commit(repo) == head and len(head) == 40


@pytest.mark.parametrize(("outcomes", "rate", "changes"), [
    (["passed", "passed"], 1.0, 0),
    (["passed", "failed", "passed", "skipped", "failed"], 2 / 4, 3),
    (["skipped", "skipped"], None, 0),
    (["failed", "error", "xfailed"], 1 / 3, 1),
])
def test_pass_rate_and_flips(outcomes: list[str], rate: float | None, changes: int) -> None:
    assert pass_rate(outcomes) == rate
    assert flips(outcomes) == changes


def test_a_test_that_flips_both_ways_is_flaky_one_change_is_not(tmp_path: Path) -> None:
    db = HistoryDB(tmp_path / "history.db")
    sequence = {"test_a.py::test_flaky": ["passed", "failed", "passed"],
                "test_a.py::test_fixed": ["failed", "failed", "passed"]}
    for number in range(3):
        run = make_run(tmp_path, f"run-{number}", 1000.0 + number,
                       [(n, o[number], 0.1, {}) for n, o in sequence.items()])
        db.record_run(run, git_commit=None)
    trends = {t.nodeid: t for t in db.test_trends()}
    assert trends["test_a.py::test_flaky"].flaky and trends["test_a.py::test_flaky"].flips == 2
    assert not trends["test_a.py::test_fixed"].flaky
    assert trends["test_a.py::test_fixed"].pass_rate == pytest.approx(1 / 3)


# -- regressions -------------------------------------------------------------------------------
def test_a_slower_run_is_flagged_with_value_median_and_threshold(tmp_path: Path) -> None:
    db = HistoryDB(tmp_path / "history.db")
    seed(tmp_path, db, [0.500, 0.100, 0.110, 0.090, 0.105, 0.095])  # 0.5: oldest, not in the 5
    slow = make_run(tmp_path, "slow", 2000.0, [(NODE, "passed", 1.0, {"write": 0.200})])
    (comparison,) = compare(slow, db, Policy(runs=5, threshold=0.25))
    assert comparison.regressed and comparison.compared == 5
    assert comparison.median == pytest.approx(0.100)
    text = comparison.describe()
    assert "write = 200.0 ms, 100% slower" in text and "median 100.0 ms" in text
    assert "threshold 25%" in text and "last 5 comparable runs" in text
    assert regressions([comparison]) == [comparison]


def test_within_threshold_noise_floor_and_too_few_runs_are_not_regressions(
    tmp_path: Path
) -> None:
    db = HistoryDB(tmp_path / "history.db")
    seed(tmp_path, db, [0.100] * 5)
    seed(tmp_path, db, [0.001] * 5, metric="tiny")
    seed(tmp_path, db, [0.100] * 2, metric="young")
    run = make_run(tmp_path, "now", 2000.0, [(NODE, "passed", 1.0, {
        "write": 0.120,  # +20%: under the 25% threshold
        "tiny": 0.003,  # +200%, but 2 ms: under the 5 ms noise floor
        "young": 0.900,  # only 2 earlier values: no median yet
    })])
    results = {c.metric: c for c in compare(run, db, Policy())}
    assert not any(c.regressed for c in results.values())
    assert results["young"].median is None and results["young"].compared == 2
    assert results["write"].change == pytest.approx(0.2)
    assert compare(run, db, Policy(threshold=0.1))[0].regressed  # a stricter threshold flags it


def test_only_the_same_topology_is_comparable(tmp_path: Path) -> None:
    db = HistoryDB(tmp_path / "history.db")
    seed(tmp_path, db, [0.100] * 5, digest="small-topology")
    run = make_run(tmp_path, "now", 2000.0, [(NODE, "passed", 1.0, {"write": 0.5})],
                   digest="big-topology")
    (comparison,) = compare(run, db)
    assert comparison.median is None and not comparison.regressed


def test_a_lower_bound_target_means_lower_is_worse(tmp_path: Path) -> None:
    db = HistoryDB(tmp_path / "history.db")
    seed(tmp_path, db, [1.0] * 5, metric="uptime")
    run = make_run(tmp_path, "now", 2000.0, [(NODE, "passed", 1.0, {"uptime": 0.5})],
                   targets={"uptime": "> 0.1s"})
    (comparison,) = compare(run, db)
    assert comparison.regressed and not comparison.higher_is_worse
    assert "50% lower" in comparison.describe()
