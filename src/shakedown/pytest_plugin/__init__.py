"""The pytest plugin (entry point ``pytest11``): the ``shakedown_env`` fixture and the
``shakedown`` marker, per-test databases, measurements checked against targets, honest
outcomes (a missing binary is a skip locally but an error under --shakedown-strict or CI=true),
failure forensics (service log tails on the report, logs copied to the run directory), and
results.json plus JUnit properties for machines."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import pytest

from ..environment import Environment
from ..errors import MissingBinaryError, ShakedownError, mask_url
from ..history import mark_test
from ..services import ResetsPerTest
from ..store import RunPaths, StateStore
from . import _shard
from ._manager import SCOPES, EnvironmentManager, Started
from ._options import add_options, settings_from
from ._reporting import finish as finish_reporting
from ._reporting import policy_from
from ._reporting import preloading as preloading_reports
from ._reporting import summary_lines as reporting_lines
from ._results import (
    ENVIRONMENT,
    LOGS,
    MEASURE_PREFIX,
    TARGET_MISSED,
    RunResults,
    summary_lines,
)

MANAGER = pytest.StashKey[EnvironmentManager]()
RESULTS = pytest.StashKey[RunResults]()
USED = pytest.StashKey[list[Started]]()
FAILURES = pytest.StashKey[dict[tuple[Path, str], BaseException]]()

__all__ = ["pytest_addoption", "pytest_configure", "shakedown_env"]


def pytest_addoption(parser: pytest.Parser) -> None:
    add_options(parser)
    _shard.add_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "shakedown(file=None, scope='session'): the topology file (relative to the test "
        "file) and the scope (session, module, function) of the shakedown_env environment.")
    settings = settings_from(config)
    policy_from(config)  # a bad regression setting is a usage error now, not at the end
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    if worker == "main":
        # Workers inherit the run id, so that all of them copy logs into one run directory.
        os.environ["SHAKEDOWN_RUN_ID"] = time.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    run_id = os.environ.get("SHAKEDOWN_RUN_ID", "unknown")
    run_dir = StateStore(settings.state_root).run(run_id).dir
    config.stash[MANAGER] = EnvironmentManager(settings, worker, run_dir)
    config.stash[RESULTS] = RunResults(run_id, run_dir)
    config.stash[FAILURES] = {}
    _shard.configure(config)
    config.stash[RESULTS].shard = _shard.results_info(config)


@pytest.hookimpl(trylast=True)  # after -k/-m and other plugins chose the tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    _shard.modify_items(config, items, config.stash[MANAGER], config.stash[RESULTS].run_dir)
    config.stash[RESULTS].shard = _shard.results_info(config)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    return _shard.make_scheduler(config, log, config.stash[RESULTS].run_dir)


@pytest.fixture
def shakedown_env(request: pytest.FixtureRequest) -> Iterator[Environment]:
    """The environment of the test's topology: started on first use, shared within its scope
    (``@pytest.mark.shakedown(scope=...)``, session by default)."""
    item = request.node
    assert isinstance(item, pytest.Item)
    with preloading_reports(item.config):
        started = _started_for(item)
    item.stash.setdefault(USED, []).append(started)
    started.measured_index[item.nodeid] = len(started.env.recorded)
    _mark(started.env, item, "start")
    yield started.env
    _after_test(started)
    _mark(started.env, item, "end")


def _mark(env: Environment, item: pytest.Item, event: Literal["start", "end"]) -> None:
    """Tests on the environment's timeline, so a report can cut the history per test."""
    if env.history is not None:
        mark_test(env.history, item.nodeid, event)


def _started_for(item: pytest.Item) -> Started:
    config = item.config
    manager = config.stash[MANAGER]
    marker = item.get_closest_marker("shakedown")
    kwargs = marker.kwargs if marker else {}
    scope = kwargs.get("scope", "session")
    if scope not in SCOPES:
        raise pytest.UsageError(f"@pytest.mark.shakedown(scope={scope!r}): use one of {SCOPES}")
    failures = config.stash[FAILURES]
    try:
        path = manager.topology_for(item, kwargs.get("file"))
        key = (path, manager._scope_key(item, scope))
        if key in failures:
            raise failures[key]  # started once already and failed: do not try per test
        try:
            return manager.get(item, path, scope)
        except ShakedownError as exc:
            failures[key] = exc
            raise
    except MissingBinaryError as exc:
        message = f"{exc.what}; install it with: {exc.install}"
        if manager.settings.strict:
            pytest.fail(f"shakedown (strict): {message}", pytrace=False)
        pytest.skip(message)
    except ShakedownError as exc:
        pytest.fail(mask_url(exc.render()), pytrace=False)


def _after_test(started: Started) -> None:
    """Heal what the test broke, so every test starts healthy (even after a failure); drop
    the test's databases in the background, the next test does not wait for it."""
    env = started.env
    if env.faults.used:
        env.faults.heal()
        env.faults.used = False
    for service in started.env.services.values():
        if isinstance(service, ResetsPerTest):
            service.reset_after_test()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield
    item.config.stash[MANAGER].release(item, nextitem)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    used = item.stash.get(USED, [])
    if not used:
        return
    if call.when == "call":
        _record_measurements(item, report, used)
    if report.failed:
        _attach_forensics(item, report, used)


def _record_measurements(item: pytest.Item, report: pytest.TestReport,
                         used: list[Started]) -> None:
    missed: list[str] = []
    for started in used:
        env = started.env
        measured: dict[str, float] = {}
        if not started.reported:
            started.reported = True
            measured.update({k: v for k, v in env.measurements().items() if k.endswith(".ready")
                             and k.removesuffix(".ready") in env.services})
            item.user_properties.append((ENVIRONMENT, json.dumps(_environment_info(started))))
        measured.update(dict(env.recorded[started.measured_index.get(item.nodeid, 0):]))
        for name, seconds in measured.items():
            item.user_properties.append((MEASURE_PREFIX + name, round(seconds, 6)))
            target = env.topology.targets.get(name)
            if target is not None and not target.met_by(seconds):
                missed.append(f"{name} = {seconds * 1000:.0f} ms, target {target.text}")
    for text in missed:
        item.user_properties.append((TARGET_MISSED, text))
    report.user_properties = list(item.user_properties)
    if missed and report.passed:
        report.outcome = "failed"
        report.longrepr = "shakedown: target missed: " + "; ".join(missed)


def _environment_info(started: Started) -> dict[str, object]:
    env = started.env
    return {
        "name": env.name,
        "env_id": env.env_id,
        "topology": str(env.topology.path),
        "digest": env.topology.digest(),
        "first_test": started.first_test,
        "targets": {n: t.text for n, t in env.topology.targets.items()},
        "services": [{"name": s.name, "kind": s.kind, "url": mask_url(s.url),
                      "version": _version(s),
                      "ready_s": env.measurements().get(f"{s.name}.ready")}
                     for s in env.services.values()],
    }


def _version(service: object) -> str | None:
    try:
        return service.version()  # type: ignore[attr-defined, no-any-return]
    except Exception:
        return None


def _attach_forensics(item: pytest.Item, report: pytest.TestReport,
                      used: list[Started]) -> None:
    run_dir = item.config.stash[RESULTS].run_dir
    for started in used:
        for service in started.env.services.values():
            tail = service.log_tail(50)
            if tail:
                report.sections.append(
                    (f"shakedown: last 50 lines of {service.name}'s log", mask_url(tail)))
        target = RunPaths(run_dir).env_logs(started.env.name)
        if started.env.log_dir.exists():
            shutil.copytree(started.env.log_dir, target, dirs_exist_ok=True)
            item.user_properties.append((LOGS, str(target)))
    report.user_properties = list(item.user_properties)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    config = _config_of(report)
    if config is not None:
        config.stash[RESULTS].add(report)


_CONFIG: list[pytest.Config] = []


def pytest_sessionstart(session: pytest.Session) -> None:
    _CONFIG[:] = [session.config]


def _config_of(report: pytest.TestReport) -> pytest.Config | None:
    return _CONFIG[0] if _CONFIG else None


def pytest_sessionfinish(session: pytest.Session) -> None:
    manager = session.config.stash[MANAGER]
    manager.close()
    _shard.session_finish(session)
    finish_reporting(session, session.config.stash[RESULTS], manager.settings)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter,
                            config: pytest.Config) -> None:
    if os.environ.get("PYTEST_XDIST_WORKER"):
        return
    results = config.stash[RESULTS]
    if not results.used:
        return
    path = results.write()
    terminalreporter.section("shakedown")
    for line in summary_lines(results, path):
        terminalreporter.write_line(line)
    for line in [*_shard.summary_lines(config), *reporting_lines(config)]:
        terminalreporter.write_line(line)
    if config.stash[MANAGER].settings.keep:
        terminalreporter.write_line("environments kept running (--shakedown-keep); take them "
                                    "down with: shakedown down --name NAME "
                                    f"(in {config.stash[MANAGER].settings.rootdir})")
