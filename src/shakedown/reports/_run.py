"""A stored run, read back from its directory (``.shakedown/runs/RUN_ID/``): results.json,
the environments' histories (``histories/ENV.jsonl``) and the copies of failed tests' service
logs (``logs/ENV/*.log``). Everything a report needs, without the runner."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ShakedownError, mask_url
from ..history import NEMESIS, History

OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed", "not run")


@dataclass(frozen=True)
class TestRecord:
    """One test of a run, as results.json has it."""

    nodeid: str
    outcome: str
    duration: float
    reason: str = ""
    longrepr: str = ""
    measurements: dict[str, float] = field(default_factory=dict)
    targets_missed: tuple[str, ...] = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TestRecord:
        return cls(
            nodeid=str(data["nodeid"]),
            outcome=str(data.get("outcome", "not run")),
            duration=float(data.get("duration") or 0.0),
            reason=str(data.get("reason") or ""),
            longrepr=str(data.get("longrepr") or ""),
            measurements={str(k): float(v) for k, v in (data.get("measurements") or {}).items()},
            targets_missed=tuple(str(m) for m in data.get("targets_missed") or ()),
        )

    def missed(self, metric: str) -> bool:
        return any(m.startswith(f"{metric} = ") for m in self.targets_missed)


@dataclass
class StoredRun:
    """results.json of one run plus what the run directory holds beside it."""

    run_dir: Path
    data: dict[str, Any]
    tests: list[TestRecord]
    histories: dict[str, History] = field(default_factory=dict)  # environment name → history

    @property
    def run_id(self) -> str:
        return str(self.data.get("run_id") or self.run_dir.name)

    @property
    def started(self) -> float:
        return float(self.data.get("started") or 0.0)

    @property
    def finished(self) -> float:
        return float(self.data.get("finished") or self.started)

    @property
    def environments(self) -> list[dict[str, Any]]:
        return list(self.data.get("environments") or [])

    @property
    def targets(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.data.get("targets") or {}).items()}

    def counts(self) -> dict[str, int]:
        counts = {outcome: 0 for outcome in OUTCOMES}
        for test in self.tests:
            counts[test.outcome] = counts.get(test.outcome, 0) + 1
        return counts

    @classmethod
    def load(cls, run_dir: Path) -> StoredRun:
        path = run_dir / "results.json"
        if not path.is_file():
            raise ShakedownError(
                f"no results.json in {run_dir}",
                checked=[str(path)],
                fix=["give the directory of a run: .shakedown/runs/RUN_ID",
                     "runs are written by pytest runs whose tests use the shakedown_env fixture"],
            )
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise ShakedownError(f"{path} is not valid JSON: {exc}",
                                 fix=["run the tests again to write it anew"]) from exc
        return cls.from_results(data, run_dir)

    @classmethod
    def from_results(cls, data: dict[str, Any], run_dir: Path) -> StoredRun:
        tests = [TestRecord.from_dict(t) for t in data.get("tests") or []]
        histories: dict[str, History] = {}
        for path in sorted((run_dir / "histories").glob("*.jsonl")):
            try:
                histories[path.stem] = History.load(path)
            except (OSError, ValueError):
                continue  # a damaged history costs its timeline, not the whole report
        return cls(run_dir, data, tests, histories)

    # -- which environment each test used -----------------------------------------------------
    def environment_of(self) -> dict[str, str]:
        """nodeid → environment name, from the test marks on each environment's timeline
        (a test that used several environments maps to the first one)."""
        used: dict[str, str] = {}
        for name, history in self.histories.items():
            for op in history.ops():
                if op.process == NEMESIS and op.f == "test" and isinstance(op.value, dict) \
                        and op.value.get("event") == "start":
                    used.setdefault(str(op.value.get("target")), name)
        return used

    def topology_of(self) -> dict[str, str]:
        """nodeid → digest of the topology its environment was started from ("" when the run
        does not say): what makes measurements of two runs comparable."""
        digests = {str(e.get("name")): str(e.get("digest") or "") for e in self.environments}
        only = next(iter(set(digests.values()))) if len(set(digests.values())) == 1 else ""
        envs = self.environment_of()
        return {t.nodeid: digests.get(envs.get(t.nodeid, ""), only) for t in self.tests}

    def log_tails(self, nodeid: str, lines: int = 50) -> dict[str, str]:
        """Last lines of each service log copied for the test's environment (copies exist for
        failed tests only), passwords masked."""
        env = self.environment_of().get(nodeid)
        dirs = [self.run_dir / "logs" / env] if env else []
        if not env or not dirs[0].is_dir():
            copies = sorted(p for p in (self.run_dir / "logs").glob("*") if p.is_dir())
            dirs = copies if len(copies) == 1 else []
        tails: dict[str, str] = {}
        for directory in dirs:
            for log in sorted(directory.rglob("*.log")):
                tails[str(log.relative_to(directory))] = mask_url(_tail(log, lines))
        return tails


def _tail(path: Path, lines: int) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, 2)
            size = handle.tell()
            handle.seek(max(0, size - 256 * 1024))
            text = handle.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(cannot read {path}: {exc})"
    return "\n".join(text.splitlines()[-lines:])


def runs_root(state_root: Path) -> Path:
    return state_root / "runs"


def latest_run(state_root: Path) -> Path:
    """The newest run directory with a results.json under ``state_root/runs``."""
    root = runs_root(state_root)
    runs = [p.parent for p in root.glob("*/results.json")]
    if not runs:
        raise ShakedownError(
            f"no stored run under {root}",
            checked=[f"{root}/*/results.json"],
            fix=["run the tests first (pytest, with tests that use the shakedown_env fixture)",
                 "or give the run directory: shakedown report .shakedown/runs/RUN_ID"],
        )
    return max(runs, key=lambda p: ((p / "results.json").stat().st_mtime, p.name))
