"""The run store (layer 3): the one module that knows the layout of shakedown's state directory
and the format of what a run leaves there. Everything else asks it for paths.

```
.shakedown/                      StateStore
  envs/NAME/                     EnvPaths: a running (or kept) environment
    state.json                   what another process needs to attach (0600: it holds passwords)
    history.jsonl                the environment's history (workloads, faults, service events)
    logs/SERVICE.log             each service's output
    patronictl-SERVICE.yml       a patronictl config for the invoking user (shakedown env)
  volumes/NAME/SERVICE/VOLUME    a service's named volume (removed at down unless kept)
  runs/RUN_ID/                   RunPaths: one pytest run
    results.json                 Results: outcomes, measurements, environments (modelled here)
    report.html                  the HTML report
    checks.json                  results of `shakedown check RUN_DIR` (CheckRecord), for the report
    histories/ENV.jsonl          each environment's history, copied at the end of the run
    environments/ENV.json        each environment's start/stop seconds, scope and tests
    logs/ENV/SERVICE.log         service logs copied for failed tests
  history.db                     trends across runs (reports' HistoryDB)
```"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import ShakedownError, UsageError
from .names import ENV_NAME_RULE, env_name_problem

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "not run")


@dataclass(frozen=True)
class EnvPaths:
    """``envs/NAME/`` of one environment."""

    dir: Path

    @property
    def name(self) -> str:
        return self.dir.name

    @property
    def state_file(self) -> Path:
        return self.dir / "state.json"

    @property
    def history_file(self) -> Path:
        return self.dir / "history.jsonl"

    @property
    def log_dir(self) -> Path:
        return self.dir / "logs"

    def log_file(self, service: str) -> Path:
        return self.log_dir / f"{service}.log"

    def client_file(self, name: str) -> Path:
        """A file written for a client tool (``patronictl-SERVICE.yml`` of ``shakedown env``):
        inside the environment's directory, so ``down`` removes it."""
        return self.dir / name


@dataclass(frozen=True)
class RunPaths:
    """``runs/RUN_ID/`` of one run."""

    dir: Path

    @property
    def run_id(self) -> str:
        return self.dir.name

    @property
    def results_file(self) -> Path:
        return self.dir / "results.json"

    @property
    def report_file(self) -> Path:
        return self.dir / "report.html"

    @property
    def checks_file(self) -> Path:
        return self.dir / "checks.json"

    @property
    def histories_dir(self) -> Path:
        return self.dir / "histories"

    def history_file(self, env: str) -> Path:
        return self.histories_dir / f"{env}.jsonl"

    def history_files(self) -> list[Path]:
        return sorted(self.histories_dir.glob("*.jsonl"))

    @property
    def timings_dir(self) -> Path:
        return self.dir / "environments"

    def timing_file(self, env: str) -> Path:
        """An environment's start and stop seconds, scope and tests (for sharding)."""
        return self.timings_dir / f"{env}.json"

    @property
    def logs_dir(self) -> Path:
        return self.dir / "logs"

    def env_logs(self, env: str) -> Path:
        return self.logs_dir / env

    @property
    def store(self) -> StateStore:
        """The state directory the run belongs to (``runs/RUN_ID`` → its grandparent)."""
        return StateStore(self.dir.resolve().parent.parent)


@dataclass(frozen=True)
class StateStore:
    """A state directory (``.shakedown`` beside the topology by default)."""

    root: Path

    def env(self, name: str) -> EnvPaths:
        """``envs/NAME/``; a name that is not a plain directory name (``../x``, empty, too
        long) is refused as bad input."""
        problem = env_name_problem(name)
        if problem is not None:
            raise UsageError(f"bad environment name {name[:80]!r}: {problem}",
                             checked=[f"the name rule: {ENV_NAME_RULE}"],
                             fix=["pass --name with a name such as ci-1 or local"])
        return EnvPaths(self.root / "envs" / name)

    def env_names(self) -> list[str]:
        """Environments that have a state file here."""
        return sorted(p.name for p in (self.root / "envs").glob("*")
                      if EnvPaths(p).state_file.exists())

    def volumes(self, env_name: str) -> Path:
        """``volumes/NAME/``: the named volumes of an environment's services
        (``volumes/NAME/SERVICE/VOLUME``), beside ``envs/NAME`` so that a kept volume
        outlives the environment's state, which the next ``up`` replaces."""
        return self.root / "volumes" / env_name

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def run(self, run_id: str) -> RunPaths:
        return RunPaths(self.runs_dir / run_id)

    def latest_run(self) -> RunPaths:
        """The newest run with a results file; a ShakedownError when there is none."""
        runs = [RunPaths(p.parent) for p in self.runs_dir.glob("*/results.json")]
        if not runs:
            raise ShakedownError(
                f"no stored run under {self.runs_dir}",
                checked=[f"{self.runs_dir}/*/results.json"],
                fix=["run the tests first (pytest, with tests that use the shakedown_env fixture)",
                     "or give the run directory: shakedown report .shakedown/runs/RUN_ID"])
        return max(runs, key=lambda r: (r.results_file.stat().st_mtime, r.run_id))

    @property
    def history_db(self) -> Path:
        return self.root / "history.db"


# -- results.json ----------------------------------------------------------------------------
@dataclass
class TestRecord:
    """One test of a run: its outcome (never folded into passed when it did not pass), time,
    why it was skipped or how it failed, its measurements and the targets it missed."""

    __test__ = False  # not a pytest test class

    nodeid: str
    outcome: str = "not run"
    duration: float = 0.0
    reason: str = ""
    longrepr: str = ""
    measurements: dict[str, float] = field(default_factory=dict)
    targets_missed: list[str] = field(default_factory=list)
    shard: str = ""  # "K/N" when the test ran in a shard (--shakedown-shard)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestRecord:
        return cls(
            nodeid=str(data["nodeid"]),
            outcome=str(data.get("outcome", "not run")),
            duration=float(data.get("duration") or 0.0),
            reason=str(data.get("reason") or ""),
            longrepr=str(data.get("longrepr") or ""),
            measurements={str(k): float(v) for k, v in (data.get("measurements") or {}).items()},
            targets_missed=[str(m) for m in data.get("targets_missed") or ()],
            shard=str(data.get("shard") or ""),
        )

    def missed(self, metric: str) -> bool:
        return any(m.startswith(f"{metric} = ") for m in self.targets_missed)


@dataclass
class Results:
    """results.json: what a run produced, for machines and for the report."""

    run_id: str
    started: float = field(default_factory=time.time)
    finished: float = 0.0
    host: str = field(default_factory=lambda: os.uname().nodename)
    python: str = field(default_factory=lambda: ".".join(map(str, sys.version_info[:3])))
    tests: list[TestRecord] = field(default_factory=list)
    environments: list[dict[str, Any]] = field(default_factory=list)
    targets: dict[str, str] = field(default_factory=dict)
    logs: list[str] = field(default_factory=list)
    git_commit: str = ""  # filled by the report when the run's directory is a git checkout
    # --shakedown-shard: {"label": "K/N", "planned_s", "source"}; a merged run: {"merged": [...]}
    shard: dict[str, Any] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        counts = {outcome: 0 for outcome in OUTCOMES}
        for test in self.tests:
            counts[test.outcome] = counts.get(test.outcome, 0) + 1
        return counts

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["counts"] = {k: v for k, v in self.counts().items() if v}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], run_id: str = "") -> Results:
        return cls(
            run_id=str(data.get("run_id") or run_id),
            started=float(data.get("started") or 0.0),
            finished=float(data.get("finished") or data.get("started") or 0.0),
            host=str(data.get("host") or ""),
            python=str(data.get("python") or ""),
            tests=[TestRecord.from_dict(t) for t in data.get("tests") or []],
            environments=list(data.get("environments") or []),
            targets={str(k): str(v) for k, v in (data.get("targets") or {}).items()},
            logs=[str(p) for p in data.get("logs") or []],
            git_commit=str(data.get("git_commit") or ""),
            shard=dict(data.get("shard") or {}),
        )

    def write(self, run: RunPaths) -> Path:
        run.dir.mkdir(parents=True, exist_ok=True)
        run.results_file.write_text(json.dumps(self.to_dict(), indent=2))
        return run.results_file

    @classmethod
    def read(cls, run: RunPaths) -> Results:
        path = run.results_file
        if not path.is_file():
            raise ShakedownError(
                f"no results.json in {run.dir}",
                checked=[str(path)],
                fix=["give the directory of a run: .shakedown/runs/RUN_ID",
                     "runs are written by pytest runs whose tests use the shakedown_env fixture"])
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ShakedownError(f"{path} is not valid JSON: {exc}",
                                 fix=["run the tests again to write it anew"]) from exc
        return cls.from_dict(data, run.run_id)


# -- checks.json -----------------------------------------------------------------------------
@dataclass
class CheckRecord:
    """One checker's verdict on one stored history (or one test's part of it), as
    ``shakedown check RUN_DIR`` wrote it: ``result`` is the checker's ``Result.to_dict()``."""

    history: str
    test: str
    checker: str
    result: dict[str, Any]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CheckRecord:
        return cls(history=str(data.get("history") or ""), test=str(data.get("test") or ""),
                   checker=str(data.get("checker") or ""), result=dict(data.get("result") or {}))


def write_checks(run: RunPaths, records: list[CheckRecord]) -> Path:
    """Replace the run's checks.json with ``records`` (a later check supersedes an earlier)."""
    run.dir.mkdir(parents=True, exist_ok=True)
    data = {"written": time.time(), "checks": [asdict(r) for r in records]}
    run.checks_file.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
    return run.checks_file


def read_checks(run: RunPaths) -> list[CheckRecord]:
    """The run's stored check results; none when ``shakedown check`` never ran on it or its
    file is damaged (the report then shows the checks recorded in the histories only)."""
    try:
        data = json.loads(run.checks_file.read_text(encoding="utf-8"))
        return [CheckRecord.from_dict(item) for item in data.get("checks") or []]
    except (OSError, ValueError, AttributeError, TypeError):
        return []
