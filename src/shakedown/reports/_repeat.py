"""Flakiness: run a pytest suite N times (each a subprocess of pytest) and count, per test,
how often it passed; the overall success rate is checked against a target.

Arithmetic (unit-tested): in each iteration a test is passing (passed, xfailed, xpassed),
failing (failed, error), skipped, or not run (absent from an iteration that ran others, or
every test of an iteration that produced no results: a crash is not a pass). A test's pass
rate is passing / (passing + failing + not run): skips count neither way, as in results.json.
The success rate is the same fraction over every test of every iteration. A test is flaky
when it both passed and did not pass within the repeat."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._historydb import FAILING, PASSING

OUTCOMES_ENV = "SHAKEDOWN_OUTCOMES_FILE"


@dataclass(frozen=True)
class Iteration:
    number: int
    exit_code: int
    duration: float
    outcomes: dict[str, str]  # nodeid → outcome; empty when the iteration wrote no results
    log: Path | None = None
    run_id: str | None = None

    @property
    def reported(self) -> bool:
        return bool(self.outcomes)


@dataclass(frozen=True)
class TestRate:
    nodeid: str
    outcomes: tuple[str, ...]  # one per iteration

    @property
    def passed(self) -> int:
        return sum(1 for o in self.outcomes if o in PASSING)

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if o in FAILING)

    @property
    def not_run(self) -> int:
        return sum(1 for o in self.outcomes if o == "not run")

    @property
    def skipped(self) -> int:
        return sum(1 for o in self.outcomes if o == "skipped")

    @property
    def counted(self) -> int:
        return self.passed + self.failed + self.not_run

    @property
    def pass_rate(self) -> float | None:
        return None if self.counted == 0 else self.passed / self.counted

    @property
    def flaky(self) -> bool:
        return self.passed > 0 and self.passed < self.counted


@dataclass(frozen=True)
class RepeatSummary:
    iterations: tuple[Iteration, ...]
    target: float = 0.95
    tests: tuple[TestRate, ...] = field(init=False)

    def __post_init__(self) -> None:
        order: dict[str, None] = {}
        for iteration in self.iterations:
            order.update(dict.fromkeys(iteration.outcomes))
        rates = tuple(
            TestRate(nodeid, tuple(i.outcomes.get(nodeid, "not run") for i in self.iterations))
            for nodeid in order
        )
        object.__setattr__(self, "tests", rates)

    @property
    def executions(self) -> int:
        return sum(t.counted for t in self.tests)

    @property
    def success_rate(self) -> float | None:
        """Passing executions over counted executions; None when no test ran at all."""
        counted = self.executions
        return None if counted == 0 else sum(t.passed for t in self.tests) / counted

    @property
    def clean_iterations(self) -> int:
        """Iterations in which pytest exited 0."""
        return sum(1 for i in self.iterations if i.exit_code == 0)

    @property
    def flaky(self) -> list[TestRate]:
        return [t for t in self.tests if t.flaky]

    @property
    def met(self) -> bool:
        rate = self.success_rate
        return rate is not None and rate >= self.target

    def to_dict(self) -> dict[str, Any]:
        return {
            "iterations": [{"number": i.number, "exit_code": i.exit_code,
                            "duration": i.duration, "run_id": i.run_id,
                            "log": str(i.log) if i.log else None, "outcomes": i.outcomes}
                           for i in self.iterations],
            "target": self.target,
            "success_rate": self.success_rate,
            "clean_iterations": self.clean_iterations,
            "met": self.met,
            "tests": [{"nodeid": t.nodeid, "outcomes": list(t.outcomes), "passed": t.passed,
                       "failed": t.failed, "not_run": t.not_run, "skipped": t.skipped,
                       "pass_rate": t.pass_rate, "flaky": t.flaky} for t in self.tests],
        }


def read_outcomes(path: Path) -> tuple[dict[str, str], str | None]:
    """The outcomes file the plugin writes when SHAKEDOWN_OUTCOMES_FILE is set."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}, None
    outcomes = {str(k): str(v) for k, v in (data.get("outcomes") or {}).items()}
    return outcomes, data.get("run_id")


def new_repeat_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)


def run_repeated(
    pytest_args: Sequence[str],
    times: int,
    directory: Path,
    *,
    cwd: Path | None = None,
    target: float = 0.95,
    on_iteration: Callable[[Iteration], None] = lambda _: None,
    stream: bool = False,
) -> RepeatSummary:
    """Run ``python -m pytest ARGS`` ``times`` times, one after the other; keep each
    iteration's output in ``directory/iteration-K.log`` (or stream it when ``stream``)."""
    if times < 1:
        raise ValueError(f"--repeat must be at least 1, got {times}")
    directory.mkdir(parents=True, exist_ok=True)
    iterations = []
    for number in range(1, times + 1):
        outcomes_file = directory / f"iteration-{number}.outcomes.json"
        log = None if stream else directory / f"iteration-{number}.log"
        env = {**os.environ, OUTCOMES_ENV: str(outcomes_file)}
        env.pop("SHAKEDOWN_RUN_ID", None)
        began = time.monotonic()
        command = [sys.executable, "-m", "pytest", *pytest_args]
        if log is None:
            code = subprocess.run(command, cwd=cwd, env=env, check=False).returncode
        else:
            with log.open("w", encoding="utf-8") as out:
                code = subprocess.run(command, cwd=cwd, env=env, stdout=out,
                                      stderr=subprocess.STDOUT, check=False).returncode
        outcomes, run_id = read_outcomes(outcomes_file)
        iteration = Iteration(number, code, time.monotonic() - began, outcomes, log, run_id)
        on_iteration(iteration)
        iterations.append(iteration)
    summary = RepeatSummary(tuple(iterations), target)
    (directory / "summary.json").write_text(json.dumps(summary.to_dict(), indent=2))
    return summary
