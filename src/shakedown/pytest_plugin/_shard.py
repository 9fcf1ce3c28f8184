"""Sharding in the plugin: ``--shakedown-shard K/N`` keeps this machine's share of the
collected tests (planned by ``_plan`` from recorded durations: a pytest-split style durations
file, or ``.shakedown/history.db``), and with ``-n N`` a scheduler of its own sends the tests
that share an environment to one xdist worker (``--shakedown-no-group`` turns that off).

Durations file: pytest-split's format (``.test_durations``: a JSON object nodeid → seconds),
so one file serves both tools; shakedown adds one key per topology,
``shakedown-env::PATH`` → its start + stop seconds, and its test durations leave those out.
pytest-split itself is not a dependency: its split knows nothing of shared environments."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ..errors import ShakedownError
from ..reports import ENV_PREFIX, HistoryDB
from ..store import RunPaths, StateStore
from ._manager import EnvironmentManager
from ._plan import Plan, PlannedTest, plan

DURATIONS_FILE = ".test_durations"  # pytest-split's default name, in the rootdir


@dataclass(frozen=True)
class Shard:
    index: int  # 1-based
    count: int

    @property
    def label(self) -> str:
        return f"{self.index}/{self.count}"


@dataclass
class ShardState:
    shard: Shard | None
    plan: Plan | None = None
    source: str = ""
    collected: int = 0  # tests before the shard kept its share


STATE = pytest.StashKey[ShardState]()


def add_options(parser: pytest.Parser) -> None:
    group = parser.getgroup("shakedown")
    group.addoption("--shakedown-shard", metavar="K/N",
                    help="Run shard K of N (1 <= K <= N): a deterministic share of the tests, "
                         "balanced by recorded durations, tests sharing an environment kept "
                         "together where that is cheaper; merge the shards' runs with "
                         "`shakedown merge`.")
    group.addoption("--shakedown-durations", metavar="FILE",
                    help="Durations to plan shards and xdist workers with (pytest-split "
                         "format, written by `shakedown durations > FILE`; default: "
                         ".shakedown/history.db, else ./.test_durations).")
    group.addoption("--shakedown-no-group", action="store_true",
                    help="With -n: distribute tests as pytest-xdist's --dist load does, "
                         "not grouped onto workers by environment.")


def parse_shard(text: str | None) -> Shard | None:
    if text is None:
        return None
    head, _, tail = text.partition("/")
    try:
        shard = Shard(int(head), int(tail))
    except ValueError:
        shard = Shard(0, 0)
    if not 1 <= shard.index <= shard.count:
        raise pytest.UsageError(
            f"--shakedown-shard {text!r}: expected K/N with whole numbers 1 <= K <= N (for a "
            f"CI matrix of 3 jobs: --shakedown-shard 1/3, 2/3 and 3/3)")
    return shard


def configure(config: pytest.Config) -> None:
    config.stash[STATE] = ShardState(parse_shard(config.getoption("--shakedown-shard")))


def results_info(config: pytest.Config) -> dict[str, Any]:
    """What results.json says about the shard (empty when the run is not one)."""
    state = config.stash.get(STATE, None)
    if state is None or state.shard is None:
        return {}
    info: dict[str, Any] = {"label": state.shard.label, "index": state.shard.index,
                            "count": state.shard.count, "source": state.source,
                            "collected": state.collected}
    if state.plan is not None:
        info["planned_s"] = state.plan.loads
        info["by_duration"] = state.plan.by_duration
    return info


# -- durations -------------------------------------------------------------------------------
def read_durations_file(path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """(test seconds, topology start + stop seconds) from a pytest-split style file (its old
    list-of-pairs form too)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        pairs = data.items() if isinstance(data, dict) else [tuple(p) for p in data]
        values = {str(k): float(v) for k, v in pairs}
    except (OSError, ValueError, TypeError) as exc:
        raise pytest.UsageError(
            f"--shakedown-durations {path}: not a durations file ({type(exc).__name__}: "
            f"{exc}); checked: a JSON object of test id -> seconds (pytest-split's "
            f".test_durations); fix: write one with `shakedown durations > {path}`") from exc
    tests = {k: v for k, v in values.items() if not k.startswith(ENV_PREFIX)}
    envs = {k.removeprefix(ENV_PREFIX): v for k, v in values.items() if k.startswith(ENV_PREFIX)}
    return tests, envs


def _durations(config: pytest.Config) -> tuple[dict[str, float], dict[str, float], str]:
    option = config.getoption("--shakedown-durations")
    rootdir = Path(config.rootpath)
    if option:
        path = Path(option) if Path(option).is_absolute() else Path.cwd() / option
        if not path.is_file():
            raise pytest.UsageError(
                f"--shakedown-durations {option}: no such file (checked {path}); fix: export "
                f"one with `shakedown durations > {option}` after a run, or leave the option "
                f"out to plan from .shakedown/history.db")
        return (*read_durations_file(path), str(option))
    db = HistoryDB(StateStore(rootdir / ".shakedown").history_db)
    recorded = db.durations() if db.exists() else None
    if recorded is not None and (recorded.tests or recorded.environments):
        return recorded.tests, recorded.environments, str(db.path.relative_to(rootdir))
    if (rootdir / DURATIONS_FILE).is_file():
        return (*read_durations_file(rootdir / DURATIONS_FILE), DURATIONS_FILE)
    return {}, {}, "no recorded durations: split by module"


# -- which environment each test shares ------------------------------------------------------
def planned_tests(items: Sequence[pytest.Item], manager: EnvironmentManager) -> list[PlannedTest]:
    rootdir = manager.settings.rootdir.resolve()
    return [_planned(item, manager, rootdir) for item in items]


def _planned(item: pytest.Item, manager: EnvironmentManager, rootdir: Path) -> PlannedTest:
    module = item.nodeid.split("::", 1)[0]
    if "shakedown_env" not in getattr(item, "fixturenames", ()):
        return PlannedTest(item.nodeid, module)
    marker = item.get_closest_marker("shakedown")
    kwargs = marker.kwargs if marker else {}
    try:
        path = manager.topology_for(item, kwargs.get("file"))
    except ShakedownError:
        return PlannedTest(item.nodeid, module)  # the test fails at setup, wherever it runs
    try:
        topology = str(path.resolve().relative_to(rootdir))
    except ValueError:
        topology = str(path)
    scope = str(kwargs.get("scope", "session"))
    scope_key = {"module": module, "function": item.nodeid}.get(scope, "session")
    return PlannedTest(item.nodeid, module, f"{topology}::{scope}::{scope_key}", topology)


# -- the hooks -------------------------------------------------------------------------------
def modify_items(config: pytest.Config, items: list[pytest.Item],
                 manager: EnvironmentManager, run_dir: Path) -> None:
    """Keep this shard's tests; on an xdist worker, write the workers' plan for the
    controller's scheduler."""
    state = config.stash[STATE]
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 0)
    if state.shard is None and not (workers > 1 and _grouping(config)):
        return
    tests, envs, state.source = _durations(config)
    planned = planned_tests(items, manager)
    state.collected = len(items)
    if state.shard is not None:
        state.plan = plan(planned, state.shard.count, tests, envs)
        keep = set(state.plan.bins[state.shard.index - 1])
        kept = [i for i in items if i.nodeid in keep]
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in keep])
        items[:] = kept
        planned = [p for p in planned if p.nodeid in keep]
    if workers > 1 and _grouping(config):
        by_worker = plan(planned, workers, tests, envs).bin_of()
        _write_atomically(RunPaths(run_dir).dir / "xdist-plan.json",
                          json.dumps({n: f"shakedown-worker-{b}" for n, b in by_worker.items()}))


def _grouping(config: pytest.Config) -> bool:
    return not config.getoption("--shakedown-no-group")


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text)
    temporary.replace(path)


def make_scheduler(config: pytest.Config, log: Any, run_dir: Path) -> Any:
    """On the xdist controller: replaces --dist load (xdist's default with -n), never a
    distribution mode the user chose (loadscope, loadfile, worksteal, ...)."""
    if config.getvalue("dist") != "load" or not _grouping(config):
        return None
    from xdist.scheduler import LoadScopeScheduling

    plan_file = RunPaths(run_dir).dir / "xdist-plan.json"

    class EnvironmentScheduling(LoadScopeScheduling):  # type: ignore[misc]
        """xdist's scope scheduling with shakedown's plan as the scopes: each planned worker
        share is one unit, so the tests of one environment run on one worker."""

        groups: dict[str, str] | None = None

        def _split_scope(self, nodeid: str) -> str:
            if self.groups is None:
                try:
                    self.groups = json.loads(plan_file.read_text())
                except (OSError, ValueError):
                    self.groups = {}  # no plan: every test its own unit (like --dist load)
            return self.groups.get(nodeid, nodeid)

    return EnvironmentScheduling(config, log)


def session_finish(session: pytest.Session) -> None:
    """A shard with no share of a non-empty suite (more shards than modules, say) passed."""
    state = session.config.stash.get(STATE, None)
    if state is not None and state.shard is not None and state.collected \
            and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
        session.exitstatus = pytest.ExitCode.OK


def summary_lines(config: pytest.Config) -> list[str]:
    state = config.stash.get(STATE, None)
    if state is None or state.shard is None or state.plan is None:
        return []
    index = state.shard.index - 1
    unit = "s" if state.plan.by_duration else " tests"
    loads = ", ".join(f"{load:.1f}{unit}" for load in state.plan.loads)
    return [f"shard {state.shard.label}: {len(state.plan.bins[index])} of {state.collected} "
            f"tests, {len(state.plan.envs[index]) if state.plan.envs else 'by module'} "
            f"environment(s); planned loads {loads} ({state.source})"]
