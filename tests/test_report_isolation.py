"""Isolation anomalies in the HTML report: a real pytest run (in a subprocess, through the
plugin) of list-append at READ COMMITTED and at SERIALIZABLE against a real PostgreSQL, each
test keeping its own check (``record_check``); then ``shakedown check RUN_DIR`` stores its
verdicts in checks.json and ``shakedown report`` draws each anomaly's cycle as an SVG graph with
the cycle's transactions and edge kinds. The serializable test's section draws none."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bounds import hang_bound
from shakedown.process import tagged_processes
from shakedown.reports import StoredRun, latest_run
from shakedown.reports._checks_html import checks_by_test

TOPOLOGY = """
[services.db]
kind = "postgres"
"""

SUITE = """
from shakedown.checkers import isolation, record_check
from shakedown.history import History, record_final
from shakedown.workloads import Runner
from shakedown.workloads.postgres import WORKLOADS, list_append


def run(shakedown_env, level):
    url, history = shakedown_env["db"].url, shakedown_env.history
    list_append.setup(url)
    start = len(history)  # this test's part of the environment's history
    record_final(history, "isolation-model", "serializable")
    Runner(WORKLOADS[list_append.WORKLOAD.name].clients(url, isolation=level),
                     list_append.generator(keys=3, seconds=3.0, seed=0), concurrency=6,
                     history=history).run()
    mine = History(ops=[op for op in history.ops() if op.index >= start])
    result = isolation(mine, model="serializable")
    record_check(history, "isolation", result)
    return result


def test_read_committed(shakedown_env):
    result = run(shakedown_env, "read-committed")
    assert result.validity == "invalid", result.explanation


def test_serializable(shakedown_env):
    result = run(shakedown_env, "serializable")
    assert result.validity == "valid", result.explanation
"""
RC, SER = "test_suite.py::test_read_committed", "test_suite.py::test_serializable"


def cli(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=directory, capture_output=True, text=True, check=False,
                          timeout=hang_bound(300), env={**os.environ, "COLUMNS": "200"})


class Checked:
    """The stored run, after ``shakedown check`` and ``shakedown report`` ran on it."""

    def __init__(self, run_dir: Path, check: subprocess.CompletedProcess[str]) -> None:
        self.run_dir = run_dir
        self.check = check
        self.run = StoredRun.load(run_dir)
        self.html = (run_dir / "report.html").read_text(encoding="utf-8")

    def section(self, nodeid: str) -> str:
        """The report's article of one test."""
        found = re.search(r'<article[^>]*data-nodeid="' + re.escape(nodeid) + r'".*?</article>',
                          self.html, re.S)
        assert found, f"no section for {nodeid}"
        return found.group(0)


@pytest.fixture(scope="module")
def checked(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checked]:
    project = tmp_path_factory.mktemp("isolation-report")
    (project / "shakedown.toml").write_text(TOPOLOGY)
    (project / "test_suite.py").write_text(SUITE)
    ran = cli(project, sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
              "no:randomly", "-rA", "test_suite.py")
    assert "2 passed" in ran.stdout, ran.stdout + ran.stderr
    assert not tagged_processes(root=Path(os.environ["SHAKEDOWN_RUNTIME_DIR"]))
    run_dir = latest_run(project / ".shakedown")
    check = cli(project, sys.executable, "-m", "shakedown", "check", str(run_dir))
    report = cli(project, sys.executable, "-m", "shakedown", "report", str(run_dir))
    assert report.returncode == 0, report.stdout + report.stderr
    yield Checked(run_dir, check)


def stored_checks(run_dir: Path) -> dict[str, dict[str, object]]:
    data = json.loads((run_dir / "checks.json").read_text(encoding="utf-8"))
    return {item["test"]: item for item in data["checks"] if item["checker"] == "isolation"}


def test_shakedown_check_stores_its_verdicts_in_the_run(checked: Checked) -> None:
    assert checked.check.returncode == 1, checked.check.stdout + checked.check.stderr
    assert f"checks: {checked.run_dir / 'checks.json'}" in checked.check.stdout.replace("\n", "")
    stored = stored_checks(checked.run_dir)
    assert set(stored) == {RC, SER}
    assert stored[RC]["result"]["validity"] == "invalid"  # type: ignore[index]
    assert stored[SER]["result"]["validity"] == "valid"  # type: ignore[index]


def test_each_cycle_is_drawn_with_its_transactions_and_edge_kinds(checked: Checked) -> None:
    section = checked.section(RC)
    shown = checks_by_test(checked.run)[RC]
    assert {c.source for c in shown} == {"shakedown check", "recorded by the test"}
    for check in shown:
        details = check.result["details"]
        cycles = details["cycles"]
        assert cycles and set(cycles) <= set(details["anomalies"])
        for name, examples in cycles.items():
            for cycle in examples[:3]:
                svg = _svg_of(section, name, cycle)
                assert set(re.findall(r'data-txn="(T\d+)"', svg)) == set(cycle["txns"])


def _svg_of(section: str, name: str, cycle: dict[str, Any]) -> str:
    """The SVG in ``section`` drawing ``cycle``: the anomaly's name, each edge's kind and ends
    in the cycle's order, and each transaction (index, process) in its node's tooltip."""
    edge = r'data-kind="([^"]+)" data-from="(T\d+)" data-to="(T\d+)"'
    steps = [(s["kind"], s["from"], s["to"]) for s in cycle["steps"]]
    txns = [f"{n} = index {t['index']}, process {t['process']}" for n, t in
            cycle["txns"].items()]
    for svg in re.findall(r'<svg class="cycle-graph".*?</svg>', section, re.S):
        if (f'data-anomaly="{name}"' in svg and re.findall(edge, svg) == steps
                and all(t in svg for t in txns)):
            return svg
    raise AssertionError(f"no SVG drawing the {name} cycle {steps} of {txns}")


def test_a_valid_run_draws_no_cycle(checked: Checked) -> None:
    section = checked.section(SER)
    assert 'class="check validity-valid"' in section
    assert 'class="check validity-invalid"' not in section
    assert "cycle-graph" not in section and 'class="anomaly"' not in section
