"""Reports from stored runs (layer L4: reads what a run left in ``.shakedown/runs/RUN_ID/``,
never the runner): the self-contained HTML report, the run history in
``.shakedown/history.db`` with trends, regressions against the median of recent comparable
runs, and pass rates of repeated runs (flakiness). JUnit and results.json stay the machine
interfaces; the HTML adds to them."""

from __future__ import annotations

from pathlib import Path

from ..store import OUTCOMES, RunPaths, TestRecord
from ._historydb import (
    ENV_PREFIX,
    Durations,
    HistoryDB,
    MetricTrend,
    Point,
    RunRow,
    TestTrend,
    flips,
    git_commit,
    pass_rate,
)
from ._regressions import Comparison, Policy, compare, regressions
from ._repeat import (
    OUTCOMES_ENV,
    Iteration,
    RepeatSummary,
    TestRate,
    new_repeat_id,
    read_outcomes,
    run_repeated,
)
from ._run import StoredRun, latest_run
from ._timeline import Event, Interval, OpSpan, TestTimeline, timelines

__all__ = [
    "ENV_PREFIX",
    "OUTCOMES",
    "OUTCOMES_ENV",
    "Comparison",
    "Durations",
    "Event",
    "HistoryDB",
    "Interval",
    "Iteration",
    "MetricTrend",
    "OpSpan",
    "Point",
    "Policy",
    "RepeatSummary",
    "RunRow",
    "StoredRun",
    "TestRate",
    "TestRecord",
    "TestTimeline",
    "TestTrend",
    "build_report",
    "compare",
    "default_history_db",
    "flips",
    "git_commit",
    "latest_run",
    "new_repeat_id",
    "pass_rate",
    "read_outcomes",
    "regressions",
    "run_repeated",
    "timelines",
    "write_report",
]


def default_history_db(run_dir: Path) -> Path:
    """The history database of the state directory the run belongs to."""
    return RunPaths(run_dir).store.history_db


DEFAULT_POLICY = Policy()


def build_report(run: StoredRun, *, db: HistoryDB | None = None,
                 policy: Policy = DEFAULT_POLICY,
                 comparisons: list[Comparison] | None = None,
                 fail_on_regression: bool = False) -> str:
    """The report's HTML. ``comparisons`` default to comparing the run with ``db``."""
    from ._html import render

    if comparisons is None:
        comparisons = compare(run, db, policy) if db is not None and db.exists() else []
    if db is not None and not run.data.get("git_commit"):
        commit = db.commit_of(run.run_id)
        if commit:
            run.data["git_commit"] = commit
    return render(run, comparisons=comparisons, db=db, fail_on_regression=fail_on_regression,
                  history_runs=policy.runs)


def write_report(run_dir: Path, *, output: Path | None = None, db_path: Path | None = None,
                 policy: Policy = DEFAULT_POLICY) -> Path:
    """Read the stored run in ``run_dir`` and write its report (default
    ``run_dir/report.html``); returns the path written."""
    run = StoredRun.load(run_dir)
    db = HistoryDB(db_path or default_history_db(run_dir))
    target = output or RunPaths(run_dir).report_file
    target.write_text(build_report(run, db=db if db.exists() else None, policy=policy),
                      encoding="utf-8")
    return target
