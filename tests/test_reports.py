"""Reports from stored runs that this suite makes itself: pytest runs in subprocesses, through
the plugin, against a real PostgreSQL (a workload with a kill and a heal, failures, skips,
errors); the HTML report read as text and rendered in headless Chromium; the run history and
regressions through the plugin; ``shakedown run --repeat`` on a tiny suite. Timelines and the
repeat arithmetic are also checked on synthetic data."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from shakedown.history import NEMESIS, History
from shakedown.process import tagged_processes
from shakedown.reports import (
    HistoryDB,
    Iteration,
    RepeatSummary,
    StoredRun,
    latest_run,
    timelines,
)
from shakedown.reports._browser import DRAWN_CANVASES, INSTALL, find_chromium, visit
from shakedown.topology import load_topology

TOPOLOGY = """
[services.db]
kind = "postgres"

[targets]
"write" = "< 60s"
"""

SUITE = """
import threading

import pytest
from shakedown import eventually
from shakedown.workloads import Runner
from shakedown.workloads.postgres import append


def test_workload_with_fault(shakedown_env):
    # The report's plotting library is imported while the first environment starts, and only
    # then: an import still running would race pytest's logging plugin between test phases.
    assert "shakedown-report-preload" not in {t.name for t in threading.enumerate()}
    url, history = shakedown_env["db"].url, shakedown_env.history
    append.setup(url)
    runner = Runner(append.WORKLOAD.clients(url), append.generator(rate=60), concurrency=2,
                    history=history)

    def completed(since, ok):
        return sum(1 for op in history.ops() if op.process != "nemesis" and op.time > since
                   and op.type != "invoke" and (op.type == "ok") == ok)

    with runner:
        eventually(lambda: completed(0.0, ok=True) >= 15, timeout=20)
        killed = history.now()
        shakedown_env.faults.kill("db")  # returns once db's processes are gone
        history.append("nemesis", "info", "killed", {"target": "db"})  # db down from here
        eventually(lambda: completed(killed, ok=False) >= 10, timeout=20)
        healed = history.now()
        history.append("nemesis", "info", "healing", {"target": "db"})  # db down until here
        shakedown_env.faults.heal()
        eventually(lambda: completed(healed, ok=True) >= 15, timeout=20)
    with shakedown_env.measure("write"):
        append.setup(url)


def test_fails(shakedown_env):
    assert shakedown_env["db"].port == -1, "port mismatch on purpose"


@pytest.mark.skip(reason="not on this machine")
def test_skipped(shakedown_env):
    pass


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke on purpose")


def test_errors(shakedown_env, broken):
    pass


@pytest.mark.xfail(reason="known bug")
def test_known_bug(shakedown_env):
    assert False
"""

WORKLOAD_TEST = "test_suite.py::test_workload_with_fault"


def run_pytest(directory: Path, *args: str, env: dict[str, str] | None = None,
               timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
                          cwd=directory, capture_output=True, text=True, check=False,
                          env=env or os.environ.copy(), timeout=timeout)


def shakedown(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shakedown", *args], cwd=directory,
                          capture_output=True, text=True, check=False, timeout=240,
                          env={**os.environ, "COLUMNS": "200"})


class Stored:
    def __init__(self, project: Path, result: subprocess.CompletedProcess[str]) -> None:
        self.project = project
        self.result = result
        self.run_dir = latest_run(project / ".shakedown")
        self.run = StoredRun.load(self.run_dir)
        self.html = (self.run_dir / "report.html").read_text()


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stored]:
    """One real run of SUITE, shared by the tests that read what it left behind."""
    project = tmp_path_factory.mktemp("reported")
    (project / "shakedown.toml").write_text(TOPOLOGY)
    (project / "test_suite.py").write_text(SUITE)
    result = run_pytest(project, "--junitxml=junit.xml", "-rA")
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed, 1 error" in result.stdout, \
        result.stdout + result.stderr
    # The run's environments live in this run's runtime root, which the leak guard checks.
    assert not tagged_processes(root=Path(os.environ["SHAKEDOWN_RUNTIME_DIR"]))
    yield Stored(project, result)


# -- the report of a real run ------------------------------------------------------------------
def test_the_run_writes_its_report_beside_results_and_junit(stored: Stored) -> None:
    assert f"report: {stored.run_dir / 'report.html'}" in stored.result.stdout
    assert (stored.run_dir / "results.json").is_file()
    junit = (stored.project / "junit.xml").read_text()
    assert junit.count("<testcase") == 5 and "shakedown.measure.write" in junit


def _count(html: str, outcome: str) -> int:
    match = re.search(rf'data-outcome="{outcome}"><b>(\d+)</b>', html)
    assert match, f"no summary card for {outcome}"
    return int(match.group(1))


def test_outcomes_are_shown_distinctly(stored: Stored) -> None:
    html = stored.html
    assert {k: _count(html, k) for k in ("passed", "failed", "error", "skipped", "xfailed")} \
        == {"passed": 1, "failed": 1, "error": 1, "skipped": 1, "xfailed": 1}
    articles = dict(re.findall(r'<article class="test[^"]*" id="test-\d+" '
                               r'data-nodeid="([^"]+)" data-outcome="([^"]+)"', html))
    assert articles == {WORKLOAD_TEST: "passed", "test_suite.py::test_fails": "failed",
                        "test_suite.py::test_skipped": "skipped",
                        "test_suite.py::test_errors": "error",
                        "test_suite.py::test_known_bug": "xfailed"}
    summary = html.split('<section id="summary"')[1].split("</section>")[0]
    assert "Failed (1)" in summary and "port mismatch on purpose" in summary
    assert "Errors (setup or teardown failed) (1)" in summary
    assert "fixture broke on purpose" in summary
    assert "Skipped (1)" in summary and "not on this machine" in summary


def test_a_failed_test_shows_its_failure_and_service_log_tail(stored: Stored) -> None:
    block = stored.html.split('data-nodeid="test_suite.py::test_fails"')[1].split("</article>")[0]
    assert 'class="failure"' in block and "port mismatch on purpose" in block
    assert "db.log: last 50 lines" in block
    assert "database system is ready to accept connections" in block


def test_measurements_are_shown_against_their_targets(stored: Stored) -> None:
    block = stored.html.split(f'data-nodeid="{WORKLOAD_TEST}"')[1].split("</article>")[0]
    row = re.search(r"<tr><td>write</td>.*?</tr>", block)
    assert row and "&lt; 60s" in row.group(0) and 'class="good">met<' in row.group(0)
    assert "<td>db.ready</td>" in block  # the first test carries the environment's ready time


def test_the_timeline_has_operations_and_the_fault_interval(stored: Stored) -> None:
    cut = timelines(stored.run.histories)
    timeline = cut[WORKLOAD_TEST]
    counts = timeline.counts()
    assert counts["ok"] > 10, counts
    assert counts["fail"] + counts["info"] > 0, "operations failed while the database was down"
    (fault,) = timeline.faults
    assert (fault.kind, fault.target, fault.open) == ("kill", "db", False)
    first_ok = min(op.end for op in timeline.ops if op.outcome == "ok" and op.end is not None)
    assert first_ok < fault.start < fault.end < timeline.duration  # writes before the fault
    # The fault is recorded before the kill and ends once db is ready again. From kill's
    # return (its processes gone) until heal began, db was certainly down: no timing margin.
    ops = [op for h in stored.run.histories.values() for op in h.ops()]
    begun = next(op.time for op in ops if op.f == "fault-start" and op.value["target"] == "db")

    def marker(name: str) -> float:
        return next(op.time for op in ops if op.f == name) - begun + fault.start

    killed, healing = marker("killed"), marker("healing")
    assert fault.start <= killed < healing < fault.end
    during = [op for op in timeline.ops if op.end is not None
              and killed < op.start and op.end < healing]
    assert during and all(op.outcome != "ok" for op in during), "no write succeeds while down"
    html = stored.html
    blocks = re.findall(r'<div class="shakedown-timeline" id="(timeline-\d+)" '
                        r'data-nodeid="([^"]+)"', html)
    assert [nodeid for _, nodeid in blocks] == [WORKLOAD_TEST], "timelines only with workloads"
    assert "faults: kill db from" in html


def test_the_report_is_one_self_contained_file(stored: Stored) -> None:
    html = stored.html
    assert not re.search(r"<script[^>]+src=", html), "scripts are inlined"
    markup = re.sub(r"<script\b.*?</script>", "", html, flags=re.S)  # Bokeh's code holds URLs
    assert not re.search(r"<link\b|<img\b|<iframe\b|url\(", markup)
    assert not re.search(r"""(src|href)=["'](https?:|//)""", markup)
    assert "Bokeh" in html  # the browser test checks that nothing is fetched at run time
    assert len(html) < 3_000_000, f"report is {len(html)} bytes"


def test_the_report_renders_in_chromium(stored: Stored, tmp_path: Path) -> None:
    chromium_or_skip()
    (timeline_id,) = re.findall(r'class="shakedown-timeline" id="(timeline-\d+)"', stored.html)
    shot = tmp_path / "report.png"
    page = visit(stored.run_dir / "report.html", screenshot=shot, checks={
        "timeline": f"({DRAWN_CANVASES})('#{timeline_id}')",
        "summary": "document.querySelectorAll('#summary .count').length",
    })
    assert page.checks["timeline"]["found"], page.checks
    assert page.checks["timeline"]["painted"] >= 2, f"both plots drawn: {page.checks}"
    assert page.checks["summary"] == 5
    assert page.external_requests == [], "the report fetched something from the network"
    assert page.failed_requests == [] and page.console_errors == [] and page.exceptions == []
    assert page.requests[0] == (stored.run_dir / "report.html").resolve().as_uri()
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def chromium_or_skip() -> None:
    """Without Chromium the browser check cannot run: a skip with the install command, which
    strict mode (this repository's default, tests/strict_mode.py) turns into a failure."""
    if find_chromium() is None:
        pytest.skip(f"chromium is not installed; install it with: {INSTALL}")


def test_a_missing_chromium_is_a_skip_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SHAKEDOWN_CHROMIUM", "/nonexistent/chromium")
    with pytest.raises(pytest.skip.Exception, match="apt-get install -y chromium"):
        chromium_or_skip()


def test_the_run_is_in_the_history(stored: Stored) -> None:
    db = HistoryDB(stored.project / ".shakedown" / "history.db")
    (row,) = db.recent_runs()
    assert row.run_id == stored.run.run_id and row.git_commit is None  # not a git work tree
    assert row.counts == {"passed": 1, "failed": 1, "error": 1, "skipped": 1, "xfailed": 1}
    digest = load_topology(stored.project / "shakedown.toml").digest()
    (point,) = db.series(WORKLOAD_TEST, "write", digest)
    assert point.value == stored.run.tests[0].measurements["write"]
    with sqlite3.connect(db.path) as conn:
        outcomes = dict(conn.execute("SELECT nodeid, outcome FROM tests"))
    assert outcomes["test_suite.py::test_errors"] == "error"
    assert outcomes["test_suite.py::test_known_bug"] == "xfailed"


def test_cli_report_and_history(stored: Stored, tmp_path: Path) -> None:
    output = tmp_path / "again.html"
    done = shakedown(stored.project, "report", "-o", str(output))
    assert done.returncode == 0, done.stderr
    assert "1 passed, 1 failed, 1 error, 1 skipped, 1 xfailed" in done.stdout
    assert f"report: {output}" in done.stdout
    assert 'id="timeline-0"' in output.read_text()
    history = shakedown(stored.project, "history", "write")
    assert history.returncode == 0, history.stderr
    assert "test_suite.py::test_workload_with_fault" in history.stdout
    # The measurements table, with this run's value of write (ms, 3 significant digits).
    written = stored.run.tests[0].measurements["write"] * 1000
    value = f"{written:.3g}" if written < 1000 else f"{written:.0f}"
    table = history.stdout.split("measurements", 1)[1]
    assert f"{value} ms" in table, history.stdout
    missing = shakedown(stored.project, "report", str(tmp_path / "nowhere"))
    assert missing.returncode != 0 and "no results.json" in missing.stderr


# -- regressions through the plugin --------------------------------------------------------------
STEP_TEST = """
import os, time

def test_step(shakedown_env):
    with shakedown_env.measure("step"):
        time.sleep(float(os.environ["STEP_SECONDS"]))
"""


def test_a_slower_run_is_flagged_and_fails_with_the_option(tmp_path: Path) -> None:
    (tmp_path / "shakedown.toml").write_text('[services.db]\nkind = "postgres"\n')
    (tmp_path / "test_step.py").write_text(STEP_TEST)
    digest = load_topology(tmp_path / "shakedown.toml").digest()
    db = HistoryDB(tmp_path / ".shakedown" / "history.db")
    for number in range(5):  # five earlier runs at about 50 ms
        data = {"run_id": f"earlier-{number}", "started": 1000.0 + number,
                "tests": [{"nodeid": "test_step.py::test_step", "outcome": "passed",
                           "duration": 0.1, "measurements": {"step": 0.050 + number / 1000}}],
                "environments": [{"name": "e", "digest": digest}]}
        db.record_run(StoredRun.from_results(data, tmp_path / "none"), git_commit=None)
    slow = {**os.environ, "STEP_SECONDS": "0.2"}

    failing = run_pytest(tmp_path, "--shakedown-fail-on-regression", env=slow)
    assert failing.returncode == 1, failing.stdout
    # The test passed; the run fails on the regression.
    assert re.search(r"\b1 passed\b", failing.stdout), failing.stdout
    assert re.search(r"REGRESSION test_step\.py::test_step: step = \d{3,}\.\d ms, \d+% slower "
                     r"than the median 52\.0 ms of the last 5 comparable runs \(threshold 25%\)",
                     failing.stdout), failing.stdout
    assert "regressions (FAILED;" in failing.stdout
    report = (latest_run(tmp_path / ".shakedown") / "report.html").read_text()
    assert "REGRESSION" in report and 'class="sparkline"' in report

    flagged = run_pytest(tmp_path, "-o", "shakedown_regression_threshold=30%", env=slow)
    assert flagged.returncode == 0, flagged.stdout
    assert "regressions (flagged;" in flagged.stdout and "threshold 30%" in flagged.stdout
    assert "--shakedown-fail-on-regression turns regressions into a failure" in flagged.stdout

    lenient = run_pytest(tmp_path, "--shakedown-fail-on-regression",
                         "--shakedown-regression-threshold", "1000", env=slow)
    assert lenient.returncode == 0 and "REGRESSION" not in lenient.stdout, lenient.stdout


def test_a_bad_regression_setting_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "test_nothing.py").write_text("def test_x():\n    pass\n")
    done = run_pytest(tmp_path, "--shakedown-regression-threshold", "lots")
    assert done.returncode == 4 and "threshold is a percentage" in done.stderr


# -- flakiness: shakedown run --repeat ---------------------------------------------------------
TINY_SUITE = """
from pathlib import Path
import pytest

def test_steady():
    pass

def test_flaky():
    counter = Path(__file__).with_name("runs.txt")
    runs = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(runs + 1))
    assert runs % 2 == 1, "fails on every other run"

@pytest.mark.skip(reason="never here")
def test_skipped():
    pass
"""


def test_run_repeat_reports_pass_rates_and_misses_the_target(tmp_path: Path) -> None:
    (tmp_path / "test_tiny.py").write_text(TINY_SUITE)
    done = shakedown(tmp_path, "run", "--repeat", "2", "--", "-q", "-p", "no:cacheprovider")
    assert done.returncode == 1, done.stdout + done.stderr
    out = done.stdout
    assert "run 1: exit 1" in out and "run 2: exit 0" in out
    assert re.search(r"test_tiny\.py::test_flaky .* 50% FLAKY", out), out
    assert re.search(r"test_tiny\.py::test_steady .* 100%", out)
    assert re.search(r"test_tiny\.py::test_skipped .* skipped", out)
    assert "success rate 75% (3 of 4 test runs passed; skips not counted), target 95%: " \
           "MISSED" in out
    assert "1 of 2 pytest runs exited 0; 1 flaky test(s)" in out
    (repeat_dir,) = (tmp_path / ".shakedown" / "repeats").iterdir()
    summary = json.loads((repeat_dir / "summary.json").read_text())
    assert summary["success_rate"] == 0.75 and summary["met"] is False
    assert (repeat_dir / "iteration-1.log").read_text().count("fails on every other run")
    rates = HistoryDB(tmp_path / ".shakedown" / "history.db").repeat_pass_rates()
    assert rates["test_tiny.py::test_flaky"][0][1:] == (0.5, True)
    assert rates["test_tiny.py::test_steady"][0][1:] == (1.0, False)
    history = shakedown(tmp_path, "history")
    assert "repeated runs" in history.stdout and "50%" in history.stdout

    met = shakedown(tmp_path, "run", "--repeat", "2", "--target", "70", "--", "-q",
                    "-p", "no:cacheprovider")
    assert met.returncode == 0 and "target 70%: met" in met.stdout, met.stdout


# -- arithmetic and timelines on synthetic data ----------------------------------------------------
def iteration(number: int, code: int = 0, **outcomes: str) -> Iteration:
    return Iteration(number, code, 1.0, {f"t.py::{k}": v for k, v in outcomes.items()})


def test_repeat_arithmetic() -> None:
    summary = RepeatSummary((
        iteration(1, 1, a="passed", b="failed", c="skipped", d="xfailed"),
        iteration(2, 0, a="passed", b="passed", c="skipped", d="xfailed"),
        iteration(3, 1, a="passed", b="error", c="skipped", d="xfailed"),
        iteration(4, 2),  # crashed: wrote no results
    ), target=0.95)
    tests = {t.nodeid.split("::")[1]: t for t in summary.tests}
    assert tests["a"].outcomes == ("passed", "passed", "passed", "not run")
    assert (tests["a"].passed, tests["a"].not_run, tests["a"].pass_rate) == (3, 1, 0.75)
    assert (tests["b"].passed, tests["b"].failed, tests["b"].pass_rate) == (1, 2, 0.25)
    # skipped counts neither way, but the crashed iteration did not run it either
    assert (tests["c"].skipped, tests["c"].not_run, tests["c"].pass_rate) == (3, 1, 0.0)
    assert not tests["c"].flaky
    assert tests["d"].pass_rate == 0.75  # xfailed is the expected outcome: a pass
    assert {t.nodeid for t in summary.flaky} == {"t.py::a", "t.py::b", "t.py::d"}
    assert summary.executions == 13 and summary.success_rate == 7 / 13
    only_skipped = RepeatSummary((iteration(1, c="skipped"), iteration(2, c="skipped")))
    assert only_skipped.tests[0].pass_rate is None and only_skipped.success_rate is None
    assert summary.clean_iterations == 1 and not summary.met
    assert RepeatSummary((iteration(1, a="passed"), iteration(2, a="passed")), 0.95).met
    assert RepeatSummary((iteration(1, 4),), 0.0).success_rate is None  # nothing ran: not met
    assert not RepeatSummary((iteration(1, 4),), 0.0).met


def test_timelines_are_cut_per_test_from_the_marks() -> None:
    h = History()
    h.append(NEMESIS, "info", "service", {"target": "db", "event": "ready", "seconds": 0.1},
             at=0.5)
    h.append(NEMESIS, "info", "test", {"target": "t.py::a", "event": "start"}, at=1.0)
    h.append(0, "invoke", "add", 1, at=1.1)
    h.append(0, "ok", "add", 1, at=1.2)
    h.append(1, "invoke", "add", 2, at=1.3)
    h.append(NEMESIS, "info", "fault-start", {"target": "db", "id": 7, "kind": "kill"}, at=1.4)
    h.append(1, "info", "add", 2, at=1.5, error="connection lost")
    h.append(2, "ok", "roles", {"n1": "primary", "n2": "replica"}, at=1.55)
    h.append(0, "invoke", "add", 3, at=1.6)
    h.append(0, "fail", "add", 3, at=1.65, error="refused")
    h.append(2, "ok", "roles", {"n1": "unknown", "n2": "primary"}, at=1.7)
    h.append(NEMESIS, "info", "fault-end", {"target": "db", "id": 7, "kind": "kill"}, at=1.8)
    h.append(NEMESIS, "info", "heal", {"target": "*", "healed": ["kill db"]}, at=1.8)
    h.append(1, "invoke", "add", 4, at=1.9)  # never completes
    h.append(NEMESIS, "info", "test", {"target": "t.py::a", "event": "end"}, at=2.0)
    h.append(NEMESIS, "info", "test", {"target": "t.py::b", "event": "start"}, at=2.1)
    h.append(NEMESIS, "info", "fault-start", {"target": "link", "id": 8, "kind": "latency",
                                              "latency_ms": 200}, at=2.2)
    h.append(NEMESIS, "info", "test", {"target": "t.py::b", "event": "end"}, at=2.5)
    cut = timelines({"env": h})
    a = cut["t.py::a"]
    assert a.duration == pytest.approx(1.0)
    outcomes = [(op.f, op.value, op.outcome) for op in a.ops]
    assert ("add", "1", "ok") in outcomes and ("add", "2", "info") in outcomes
    assert ("add", "3", "fail") in outcomes and ("add", "4", "pending") in outcomes
    assert a.ops[0].start == pytest.approx(0.1) and a.ops[0].latency == pytest.approx(0.1)
    (fault,) = a.faults
    assert (fault.start, fault.end, fault.label) == (pytest.approx(0.4), pytest.approx(0.8),
                                                     "kill db")
    kinds = [(e.kind, e.label) for e in a.events]
    assert ("leader", "leader: n2") in kinds and ("heal", "heal") in kinds
    assert all(e.kind != "ready" for e in a.events), "before the test: not on its timeline"
    b = cut["t.py::b"]
    (open_fault,) = b.faults
    assert open_fault.open and open_fault.end == pytest.approx(0.4)
    assert open_fault.label == "latency link latency_ms=200"
    assert not b.has_workload


def test_a_report_marks_flaky_tests_and_shows_trends_from_the_history(tmp_path: Path) -> None:
    db = HistoryDB(tmp_path / "history.db")
    outcomes = ["passed", "failed", "passed", "failed"]
    runs = []
    for number, outcome in enumerate(outcomes):
        data = {"run_id": f"run-{number}", "started": 1000.0 + number,
                "tests": [{"nodeid": "t.py::flaky", "outcome": outcome, "duration": 0.1,
                           "measurements": {"write": 0.100 + number / 100}},
                          {"nodeid": "t.py::steady", "outcome": "passed", "duration": 0.1}],
                "environments": [{"name": "e", "digest": "d"}]}
        (tmp_path / f"run-{number}").mkdir()
        runs.append(StoredRun.from_results(data, tmp_path / f"run-{number}"))
        db.record_run(runs[-1], git_commit=None)
    from shakedown.reports import build_report

    html = build_report(runs[-1], db=db)
    flaky = html.split('data-nodeid="t.py::flaky"')[1].split("</article>")[0]
    steady = html.split('data-nodeid="t.py::steady"')[1].split("</article>")[0]
    assert 'class="badge flaky"' in flaky and "3 flips in the last 4 runs" in flaky
    assert "FLAKY" not in steady and steady.count('title="passed"') == 4
    assert flaky.count("<circle") == 4 and 'class="sparkline"' in flaky  # four runs of write
    assert "Bokeh" not in html and len(html) < 50_000, "no plot, no plotting library"
    older = build_report(runs[1], db=db)  # a report of an older run sees no later runs
    assert "FLAKY" not in older.split('data-nodeid="t.py::flaky"')[1].split("</article>")[0]
