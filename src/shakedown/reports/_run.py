"""A stored run, read back from its directory (the store's ``RunPaths``): its results, the
environments' histories and the copies of failed tests' service logs. Everything a report
needs, without the runner."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import mask_url
from ..history import History
from ..store import OUTCOMES, Results, RunPaths, StateStore, TestRecord


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

    @property
    def paths(self) -> RunPaths:
        return RunPaths(self.run_dir)

    @classmethod
    def load(cls, run_dir: Path) -> StoredRun:
        paths = RunPaths(run_dir)
        return cls.from_results(Results.read(paths), paths)

    @classmethod
    def from_results(cls, results: Results | dict[str, Any],
                     paths: RunPaths | Path) -> StoredRun:
        """A run from its results (or their JSON form) and its directory."""
        if isinstance(paths, Path):
            paths = RunPaths(paths)
        if not isinstance(results, Results):
            results = Results.from_dict(results, paths.run_id)
        histories: dict[str, History] = {}
        for path in paths.history_files():
            try:
                histories[path.stem] = History.load(path)
            except (OSError, ValueError):
                continue  # a damaged history costs its timeline, not the whole report
        return cls(paths.dir, results.to_dict(), results.tests, histories)

    # -- which environment each test used -----------------------------------------------------
    def environment_of(self) -> dict[str, str]:
        """nodeid → environment name, from the test marks on each environment's timeline
        (a test that used several environments maps to the first one)."""
        used: dict[str, str] = {}
        for name, history in self.histories.items():
            for op in history.ops():
                mark = op.test_mark()
                if mark is not None and mark.event == "start":
                    used.setdefault(mark.nodeid, name)
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
        dirs = [self.paths.env_logs(env)] if env else []
        if not env or not dirs[0].is_dir():
            copies = sorted(p for p in self.paths.logs_dir.glob("*") if p.is_dir())
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


def latest_run(state_root: Path) -> Path:
    """The newest run directory with results under ``state_root``."""
    return StateStore(state_root).latest_run().dir
