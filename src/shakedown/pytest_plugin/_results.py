"""What a run produced, collected from test reports (on the xdist controller too): outcomes
that never fold skipped, failed or errored tests into passed, measurements and targets,
environments with their services and versions. Written to the run's directory as
``store.Results`` and summarised in the terminal."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..store import Results, RunPaths, TestRecord

MEASURE_PREFIX = "shakedown.measure."
TARGET_MISSED = "shakedown.target_missed"
ENVIRONMENT = "shakedown.environment"
LOGS = "shakedown.logs"


@dataclass
class RunResults:
    run_id: str
    run_dir: Path
    started: float = field(default_factory=time.time)
    tests: dict[str, TestRecord] = field(default_factory=dict)
    environments: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_copies: set[str] = field(default_factory=set)
    targets: dict[str, str] = field(default_factory=dict)
    shard: dict[str, Any] = field(default_factory=dict)  # set under --shakedown-shard

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.run_dir)

    def add(self, report: pytest.TestReport) -> None:
        result = self.tests.setdefault(report.nodeid, TestRecord(report.nodeid))
        result.duration += report.duration
        self._properties(result, report)
        outcome = _outcome(report)
        if outcome is not None and _rank(outcome) >= _rank(result.outcome):
            result.outcome = outcome
            if report.skipped:
                result.reason = _skip_reason(report)
            elif report.failed:
                result.longrepr = str(report.longrepr)[-4000:]

    def _properties(self, result: TestRecord, report: pytest.TestReport) -> None:
        for name, value in report.user_properties:
            if name.startswith(MEASURE_PREFIX):
                result.measurements[name[len(MEASURE_PREFIX):]] = float(str(value))
            elif name == TARGET_MISSED and str(value) not in result.targets_missed:
                # every later phase's report carries the item's properties again
                result.targets_missed.append(str(value))
            elif name == ENVIRONMENT:
                info = json.loads(str(value))
                self.environments[info["env_id"]] = info
                self.targets.update(info.get("targets", {}))
            elif name == LOGS:
                self.log_copies.add(str(value))

    @property
    def used(self) -> bool:
        return bool(self.environments)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for result in self.tests.values():
            counts[result.outcome] = counts.get(result.outcome, 0) + 1
        return counts

    def to_results(self) -> Results:
        label = str(self.shard.get("label") or "")
        for test in self.tests.values():
            test.shard = label
        return Results(run_id=self.run_id, started=self.started, finished=time.time(),
                       tests=list(self.tests.values()),
                       environments=[self._with_timing(e) for e in self.environments.values()],
                       targets=self.targets, logs=sorted(self.log_copies), shard=self.shard)

    def _with_timing(self, info: dict[str, Any]) -> dict[str, Any]:
        """The environment's start/stop seconds, scope and tests, written by whichever
        process (an xdist worker) took it down."""
        path = self.paths.timing_file(str(info.get("name")))
        try:
            timing = json.loads(path.read_text())
        except (OSError, ValueError):
            return info
        shard = {"shard": self.shard["label"]} if self.shard.get("label") else {}
        return {**info, **{k: v for k, v in timing.items() if k not in info}, **shard}

    def write(self) -> Path:
        return self.to_results().write(self.paths)


_RANKS = {"not run": 0, "passed": 1, "skipped": 2, "xfailed": 2, "xpassed": 2, "failed": 3,
          "error": 4}


def _rank(outcome: str) -> int:
    return _RANKS.get(outcome, 0)


def _outcome(report: pytest.TestReport) -> str | None:
    if hasattr(report, "wasxfail"):
        return "xfailed" if report.skipped else "xpassed"
    if report.when == "call":
        return str(report.outcome)
    if report.failed:
        return "error"  # setup or teardown failed: the test itself never ran or never ended
    if report.skipped:
        return "skipped"
    return None


def _skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def summary_lines(results: RunResults, results_path: Path | None) -> list[str]:
    lines: list[str] = []
    for info in results.environments.values():
        lines.append(f"environment {info['name']} ({info['topology']}):")
        for service in info["services"]:
            ready = service.get("ready_s")
            when = f"ready in {ready * 1000:.0f} ms" if ready is not None else "reused"
            lines.append(f"  {service['name']:<14} {service['kind']:<10} started, {when}  "
                         f"{service.get('version') or ''}")
    counts = results.counts()
    order = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "not run")
    lines.append("tests: " + ", ".join(f"{counts.get(k, 0)} {k}" for k in order
                                       if counts.get(k) or k in ("passed", "failed", "error",
                                                                 "skipped")))
    for result in results.tests.values():
        if result.outcome == "skipped":
            lines.append(f"  skipped {result.nodeid}: {result.reason}")
    lines.extend(_target_lines(results))
    if results.log_copies:
        lines.append("logs of failed tests' environments copied to:")
        lines.extend(f"  {path}" for path in sorted(results.log_copies))
    if results_path is not None:
        lines.append(f"results: {results_path}")
    return lines


def _target_lines(results: RunResults) -> list[str]:
    if not results.targets:
        return []
    lines = ["targets:"]
    for name, target in results.targets.items():
        values = [r.measurements[name] for r in results.tests.values() if name in r.measurements]
        if not values:
            lines.append(f"  {name} {target}: NOT MEASURED")
            continue
        missed = sum(1 for r in results.tests.values() for m in r.targets_missed
                     if m.startswith(f"{name} = "))
        verdict = f"MISSED {missed} of {len(values)}" if missed else f"met ({len(values)})"
        lines.append(f"  {name} {target}: worst {max(values) * 1000:.0f} ms, {verdict}")
    return lines
