"""At the end of a run (on the xdist controller only): append the run to
``.shakedown/history.db``, compare every measurement with the median of recent comparable runs
(regressions: flagged, or a failure with --shakedown-fail-on-regression), write
``runs/RUN_ID/report.html``, and, for ``shakedown run --repeat``, the outcome of every test."""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..reports import (
    OUTCOMES_ENV,
    Comparison,
    HistoryDB,
    Policy,
    StoredRun,
    build_report,
    compare,
    git_commit,
    regressions,
)
from ..store import StateStore
from ..topology import parse_duration
from ._options import Settings
from ._results import RunResults


@dataclass
class Reported:
    report: Path | None = None
    regressions: list[Comparison] = field(default_factory=list)
    fail: bool = False
    policy: Policy = field(default_factory=Policy)
    problems: list[str] = field(default_factory=list)


REPORTED = pytest.StashKey[Reported]()


_PRELOAD: list[threading.Thread] = []


@contextlib.contextmanager
def preloading(config: pytest.Config) -> Iterator[None]:
    """Import the plotting library in the background *while the block runs* (the first
    environment's start), so that writing the report at the end does not add its import time
    (about a second) to the run. The import is joined before the block's fixture returns: it
    creates loggers, and pytest's logging plugin walks the logger table between test phases
    without a lock ("dictionary changed size during iteration" when the two overlap)."""
    if _PRELOAD or os.environ.get("PYTEST_XDIST_WORKER") \
            or not config.getini("shakedown_html_report"):
        yield
        return
    thread = threading.Thread(target=_import_plots, name="shakedown-report-preload",
                              daemon=True)
    _PRELOAD.append(thread)
    thread.start()
    try:
        yield
    finally:
        thread.join()


def _import_plots() -> None:
    with contextlib.suppress(Exception):  # finish() imports it again and reports the error
        importlib.import_module("shakedown.reports._plots")


def policy_from(config: pytest.Config) -> Policy:
    threshold = str(config.getoption("--shakedown-regression-threshold")
                    or config.getini("shakedown_regression_threshold"))
    runs = config.getoption("--shakedown-regression-runs") \
        or config.getini("shakedown_regression_runs")
    min_delta = str(config.getini("shakedown_regression_min_delta"))
    try:
        text = threshold.strip().removesuffix("%")
        return Policy(runs=int(runs), threshold=float(text) / 100,
                      min_delta=parse_duration(min_delta))
    except ValueError as exc:
        raise pytest.UsageError(
            f"shakedown regression settings: {exc} (threshold is a percentage such as 25 or "
            f"25%, runs a whole number, shakedown_regression_min_delta a duration such as "
            f"5ms)") from exc


def finish(session: pytest.Session, results: RunResults, settings: Settings) -> None:
    """Called from pytest_sessionfinish, after the environments are down (their histories
    are then complete in the run directory)."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    config = session.config
    _write_outcomes(results, session)
    if not results.used:
        return
    reported = config.stash[REPORTED] = Reported(policy=policy_from(config))
    fail_on = bool(config.getoption("--shakedown-fail-on-regression")
                   or config.getini("shakedown_fail_on_regression"))
    results.write()  # results.json first: the report reads the run directory
    run = StoredRun.from_results(results.to_results(), results.paths)
    commit = git_commit(settings.rootdir)
    if commit:
        run.data["git_commit"] = commit
    db = HistoryDB(StateStore(settings.state_root).history_db)
    comparisons: list[Comparison] = []
    try:
        comparisons = compare(run, db, reported.policy)
        if not results.shard:  # a shard is recorded once its run is merged (shakedown merge)
            db.record_run(run, git_commit=commit, rootdir=str(settings.rootdir))
    except Exception as exc:  # a damaged history must not cost the results
        reported.problems.append(f"history {db.path} not updated: {type(exc).__name__}: {exc}")
    reported.regressions = regressions(comparisons)
    if reported.regressions and fail_on:
        reported.fail = True
        if session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    if config.getini("shakedown_html_report"):
        try:
            html = build_report(run, db=db, policy=reported.policy, comparisons=comparisons,
                                fail_on_regression=fail_on)
            reported.report = results.paths.report_file
            reported.report.write_text(html, encoding="utf-8")
        except Exception as exc:
            reported.problems.append(f"report not written: {type(exc).__name__}: {exc}")


def _write_outcomes(results: RunResults, session: pytest.Session) -> None:
    target = os.environ.get(OUTCOMES_ENV)
    if not target:
        return
    Path(target).write_text(json.dumps({
        "run_id": results.run_id if results.used else None,
        "exitstatus": int(session.exitstatus),
        "outcomes": {t.nodeid: t.outcome for t in results.tests.values()},
    }))


def summary_lines(config: pytest.Config) -> list[str]:
    reported = config.stash.get(REPORTED, None)
    if reported is None:
        return []
    lines = list(reported.problems)
    policy = reported.policy
    if reported.regressions:
        verdict = "FAILED" if reported.fail else "flagged"
        lines.append(f"regressions ({verdict}; worse than the median of the last "
                     f"{policy.runs} comparable runs by more than "
                     f"{policy.threshold * 100:.0f}%):")
        lines.extend(f"  REGRESSION {c.describe()}" for c in reported.regressions)
        if not reported.fail:
            lines.append("  (--shakedown-fail-on-regression turns regressions into a failure)")
    if reported.report is not None:
        lines.append(f"report: {reported.report}")
    return lines
