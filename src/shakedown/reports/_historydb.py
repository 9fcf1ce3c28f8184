"""The run history, ``.shakedown/history.db`` (SQLite): every stored run appends its id, time,
git commit (when the rootdir is a git work tree), topology digests, each test's outcome and
duration and every measurement; ``shakedown run --repeat`` appends per-test pass rates.
Trends, regressions and flakiness are read back from here."""

from __future__ import annotations

import itertools
import json
import sqlite3
import statistics
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ._run import StoredRun

SCHEMA_VERSION = 1
PASSING = frozenset({"passed", "xfailed", "xpassed"})
FAILING = frozenset({"failed", "error"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL NOT NULL,
    git_commit TEXT,
    rootdir TEXT,
    host TEXT,
    counts TEXT NOT NULL,
    topologies TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS tests (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    nodeid TEXT NOT NULL,
    outcome TEXT NOT NULL,
    duration REAL NOT NULL,
    topology TEXT NOT NULL,
    PRIMARY KEY (run_id, nodeid)
);
CREATE TABLE IF NOT EXISTS measurements (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    nodeid TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL NOT NULL,
    topology TEXT NOT NULL,
    PRIMARY KEY (run_id, nodeid, metric)
);
CREATE INDEX IF NOT EXISTS measurements_series ON measurements (nodeid, metric, topology);
CREATE TABLE IF NOT EXISTS repeats (
    repeat_id TEXT PRIMARY KEY,
    started REAL NOT NULL,
    finished REAL NOT NULL,
    git_commit TEXT,
    iterations INTEGER NOT NULL,
    success_rate REAL,
    target REAL NOT NULL,
    args TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS repeat_tests (
    repeat_id TEXT NOT NULL REFERENCES repeats(repeat_id) ON DELETE CASCADE,
    nodeid TEXT NOT NULL,
    passed INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    pass_rate REAL,
    flaky INTEGER NOT NULL,
    PRIMARY KEY (repeat_id, nodeid)
);
CREATE TABLE IF NOT EXISTS environments (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    topology TEXT NOT NULL,
    scope TEXT NOT NULL,
    start_s REAL NOT NULL,
    stop_s REAL NOT NULL,
    started_in TEXT,
    stopped_in TEXT,
    shard TEXT NOT NULL,
    PRIMARY KEY (run_id, name)
);
"""


def git_commit(directory: Path) -> str | None:
    """``git rev-parse HEAD`` in ``directory``; None when it is not in a git work tree (or git
    is not installed)."""
    try:
        done = subprocess.run(["git", "rev-parse", "HEAD"], cwd=directory, capture_output=True,
                              text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and len(commit) >= 40 else None


@dataclass(frozen=True)
class Point:
    run_id: str
    started: float
    value: float


@dataclass(frozen=True)
class MetricTrend:
    """The recent values of one measurement of one test on one topology, oldest first."""

    nodeid: str
    metric: str
    topology: str
    points: tuple[Point, ...]

    @property
    def values(self) -> list[float]:
        return [p.value for p in self.points]

    @property
    def last(self) -> float:
        return self.points[-1].value

    @property
    def median(self) -> float:
        return float(statistics.median(self.values))


@dataclass(frozen=True)
class TestTrend:
    """A test's recent outcomes, oldest first."""

    nodeid: str
    outcomes: tuple[str, ...]
    durations: tuple[float, ...] = field(default=())

    @property
    def pass_rate(self) -> float | None:
        return pass_rate(self.outcomes)

    @property
    def flips(self) -> int:
        return flips(self.outcomes)

    @property
    def flaky(self) -> bool:
        """Passed and failed both ways in the window (pass → fail → pass, or the reverse):
        a single change is a fix or a breakage, not flakiness."""
        return self.flips >= 2


def pass_rate(outcomes: Sequence[str]) -> float | None:
    """Passes over runs that passed or failed; skipped and not-run count neither way. None
    when the test never ran."""
    ran = [o for o in outcomes if o in PASSING or o in FAILING]
    return None if not ran else sum(1 for o in ran if o in PASSING) / len(ran)


def flips(outcomes: Sequence[str]) -> int:
    """How often the outcome changed between pass and fail (skips are ignored)."""
    ran = [o in PASSING for o in outcomes if o in PASSING or o in FAILING]
    return sum(1 for a, b in itertools.pairwise(ran) if a != b)


ENV_PREFIX = "shakedown-env::"  # a durations file's key for a topology's start + stop


@dataclass(frozen=True)
class Durations:
    """Recorded seconds: each test's own (nodeid → s) and each topology's start + stop
    (topology path relative to the rootdir → s)."""

    tests: dict[str, float]
    environments: dict[str, float]

    def file_format(self) -> dict[str, float]:
        """pytest-split's .test_durations (test id → seconds) plus ``ENV_PREFIX`` keys."""
        return {**{k: round(v, 4) for k, v in sorted(self.tests.items())},
                **{ENV_PREFIX + k: round(v, 4) for k, v in sorted(self.environments.items())}}


@dataclass(frozen=True)
class RunRow:
    run_id: str
    started: float
    finished: float
    git_commit: str | None
    counts: dict[str, int]


class HistoryDB:
    """``HistoryDB(path)``: opened per call, so it is safe to use from several processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path, timeout=30)) as conn:
            conn.execute("PRAGMA foreign_keys = ON")
            with conn:
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)",
                             (str(SCHEMA_VERSION),))
            with conn:
                yield conn

    # -- writing -----------------------------------------------------------------------------
    def record_run(self, run: StoredRun, *, git_commit: str | None, rootdir: str = "") -> None:
        """Append the run (again: a run recorded twice replaces its earlier rows)."""
        topology = run.topology_of()
        digests = sorted({str(e.get("digest") or "") for e in run.environments} - {""})
        with self._connect() as conn:
            conn.execute("DELETE FROM runs WHERE run_id = ?", (run.run_id,))
            conn.execute(
                "INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (run.run_id, run.started, run.finished, git_commit, rootdir,
                 str(run.data.get("host") or ""),
                 json.dumps({k: v for k, v in run.counts().items() if v}), json.dumps(digests)),
            )
            conn.executemany(
                "INSERT OR REPLACE INTO tests VALUES (?, ?, ?, ?, ?)",
                [(run.run_id, t.nodeid, t.outcome, t.duration, topology.get(t.nodeid, ""))
                 for t in run.tests],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO measurements VALUES (?, ?, ?, ?, ?)",
                [(run.run_id, t.nodeid, metric, value, topology.get(t.nodeid, ""))
                 for t in run.tests for metric, value in t.measurements.items()],
            )
            conn.executemany(
                "INSERT OR REPLACE INTO environments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(run.run_id, str(e["name"]), str(e.get("topology_rel") or e.get("topology")),
                  str(e.get("scope") or ""), float(e["start_s"]), float(e.get("stop_s") or 0),
                  e.get("started_in"), e.get("stopped_in"), str(e.get("shard") or ""))
                 for e in run.environments if e.get("start_s") is not None],
            )

    def delete_runs(self, run_ids: Sequence[str]) -> None:
        """Forget runs (a merged run replaces the shards it was made of)."""
        with self._connect() as conn:
            conn.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in run_ids])

    def record_repeat(self, repeat_id: str, started: float, finished: float, *,
                      git_commit: str | None, iterations: int, success_rate: float | None,
                      target: float, args: Sequence[str],
                      tests: Sequence[tuple[str, int, int, int, float | None, bool]]) -> None:
        """``tests``: (nodeid, passed, failed, skipped, pass rate, flaky) per test."""
        with self._connect() as conn:
            conn.execute("INSERT OR REPLACE INTO repeats VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                         (repeat_id, started, finished, git_commit, iterations, success_rate,
                          target, json.dumps(list(args))))
            conn.executemany("INSERT OR REPLACE INTO repeat_tests VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(repeat_id, *row[:5], int(row[5])) for row in tests])

    # -- reading -----------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.path.is_file()

    def series(self, nodeid: str, metric: str, topology: str, *, before: float | None = None,
               limit: int = 20) -> list[Point]:
        """The last ``limit`` values of a measurement, oldest first (of runs that started
        before ``before`` when given)."""
        if not self.exists():
            return []
        query = ("SELECT m.run_id, r.started, m.value FROM measurements m JOIN runs r "
                 "USING (run_id) WHERE m.nodeid = ? AND m.metric = ? AND m.topology = ?")
        params: list[object] = [nodeid, metric, topology]
        if before is not None:
            query += " AND r.started < ?"
            params.append(before)
        query += " ORDER BY r.started DESC, r.run_id DESC LIMIT ?"
        params.append(limit)
        with self._connect() as conn:
            rows = conn.execute(query, params).fetchall()
        return [Point(str(r[0]), float(r[1]), float(r[2])) for r in reversed(rows)]

    def metric_trends(self, match: str | None = None, last: int = 10) -> list[MetricTrend]:
        """Every (test, metric, topology) series whose test id or metric contains ``match``."""
        if not self.exists():
            return []
        with self._connect() as conn:
            keys = conn.execute(
                "SELECT nodeid, metric, topology, max(r.started) AS newest FROM measurements "
                "JOIN runs r USING (run_id) GROUP BY nodeid, metric, topology "
                "ORDER BY nodeid, metric, newest").fetchall()
        trends = []
        for nodeid, metric, topology, _ in keys:
            if match and match not in nodeid and match not in metric:
                continue
            points = self.series(nodeid, metric, topology, limit=last)
            if points:
                trends.append(MetricTrend(nodeid, metric, topology, tuple(points)))
        return trends

    def test_trends(self, match: str | None = None, last: int = 10,
                    until: float | None = None) -> list[TestTrend]:
        """Each test's last ``last`` outcomes (of runs started at or before ``until``)."""
        if not self.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT t.nodeid, t.outcome, t.duration FROM tests t JOIN runs r USING (run_id) "
                "WHERE r.started <= ? ORDER BY t.nodeid, r.started, r.run_id",
                (until if until is not None else float("inf"),)).fetchall()
        by_test: dict[str, list[tuple[str, float]]] = {}
        for nodeid, outcome, duration in rows:
            if not match or match in nodeid:
                by_test.setdefault(nodeid, []).append((outcome, duration))
        return [TestTrend(n, tuple(o for o, _ in rows_[-last:]), tuple(d for _, d in rows_[-last:]))
                for n, rows_ in by_test.items()]

    def durations(self, last: int = 5) -> Durations:
        """Each test's own duration (its environment's start and stop taken out) and each
        topology's start + stop, medians of the last ``last`` runs: what sharding plans with."""
        if not self.exists():
            return Durations({}, {})
        with self._connect() as conn:
            runs = [r[0] for r in conn.execute(
                "SELECT run_id FROM runs ORDER BY started DESC, run_id DESC LIMIT ?", (last,))]
            marks = "?" * len(runs)
            tests = conn.execute(
                f"SELECT run_id, nodeid, duration FROM tests WHERE run_id IN "
                f"({','.join(marks)}) AND outcome != 'not run'", runs).fetchall()
            env_rows = conn.execute(
                f"SELECT run_id, start_s, stop_s, started_in, stopped_in, topology FROM "
                f"environments WHERE run_id IN ({','.join(marks)})", runs).fetchall()
        overhead: dict[tuple[str, str], float] = {}
        costs: dict[str, list[float]] = {}
        for run_id, start_s, stop_s, started_in, stopped_in, topology in env_rows:
            costs.setdefault(topology, []).append(start_s + stop_s)
            for nodeid, seconds in ((started_in, start_s), (stopped_in, stop_s)):
                if nodeid:
                    overhead[(run_id, nodeid)] = overhead.get((run_id, nodeid), 0.0) + seconds
        own: dict[str, list[float]] = {}
        for run_id, nodeid, duration in tests:
            own.setdefault(nodeid, []).append(max(0.0, duration - overhead.get((run_id, nodeid),
                                                                               0.0)))
        return Durations({k: float(statistics.median(v)) for k, v in own.items()},
                         {k: float(statistics.median(v)) for k, v in costs.items()})

    def recent_runs(self, last: int = 10) -> list[RunRow]:
        if not self.exists():
            return []
        with self._connect() as conn:
            rows = conn.execute("SELECT run_id, started, finished, git_commit, counts FROM runs "
                                "ORDER BY started DESC, run_id DESC LIMIT ?", (last,)).fetchall()
        return [RunRow(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in reversed(rows)]

    def commit_of(self, run_id: str) -> str | None:
        if not self.exists():
            return None
        with self._connect() as conn:
            row = conn.execute("SELECT git_commit FROM runs WHERE run_id = ?",
                               (run_id,)).fetchone()
        return None if row is None or row[0] is None else str(row[0])

    def repeat_pass_rates(self, match: str | None = None,
                          last: int = 10) -> dict[str, list[tuple[str, float | None, bool]]]:
        """nodeid → [(repeat id, pass rate, flaky)] of the last ``last`` repeats, oldest first."""
        if not self.exists():
            return {}
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT t.nodeid, t.repeat_id, t.pass_rate, t.flaky FROM repeat_tests t "
                "JOIN repeats r USING (repeat_id) ORDER BY r.started").fetchall()
        rates: dict[str, list[tuple[str, float | None, bool]]] = {}
        for nodeid, repeat_id, rate, flaky in rows:
            if not match or match in nodeid:
                rates.setdefault(nodeid, []).append((repeat_id, rate, bool(flaky)))
        return {k: v[-last:] for k, v in rates.items()}
