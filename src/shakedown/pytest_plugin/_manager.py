"""Environments for a pytest run: started on first use, shared by the tests of their scope
(session, module or function), reused across runs with --shakedown-reuse, one per pytest-xdist
worker (names and ports never collide), taken down when their scope ends."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..environment import Environment
from ..errors import EnvironmentStateError, ShakedownError
from ..process import tagged_processes
from ..store import RunPaths, StateStore
from ..topology import DEFAULT_FILE, Topology, load_topology
from ._options import Settings

SCOPES = ("session", "module", "function")


@dataclass
class Started:
    """An environment the run uses, and what the results need to know about it."""

    env: Environment
    scope: str
    scope_key: str
    owned: bool  # False when reused from an earlier run: never taken down by us
    first_test: str
    reported: bool = False
    measured_index: dict[str, int] = field(default_factory=dict)
    start_s: float = 0.0  # how long up() took (0 when reused)
    tests: list[str] = field(default_factory=list)  # that used it, in the order they ran


class EnvironmentManager:
    def __init__(self, settings: Settings, worker: str, run_dir: Path) -> None:
        self.settings = settings
        self.worker = worker
        self.run_dir = run_dir
        self.started: dict[tuple[Path, str], Started] = {}

    # -- which topology ----------------------------------------------------------------------
    def topology_for(self, item: pytest.Item, marker_file: str | None) -> Path:
        if marker_file:
            path = Path(marker_file)
            return path if path.is_absolute() else (Path(item.path).parent / path).resolve()
        if self.settings.file is not None:
            return self.settings.file
        for directory in (Path(item.path).parent, *Path(item.path).parent.parents):
            if (directory / DEFAULT_FILE).exists():
                return directory / DEFAULT_FILE
            if directory == self.settings.rootdir:
                break
        raise ShakedownError(
            f"no {DEFAULT_FILE} for {item.nodeid}",
            checked=[f"{DEFAULT_FILE} in {Path(item.path).parent} and its parents up to "
                     f"{self.settings.rootdir}", "--shakedown-file", "ini shakedown_file"],
            fix=[f"create {DEFAULT_FILE} beside the tests", "or pass --shakedown-file PATH",
                 '''or mark the test: @pytest.mark.shakedown(file="...")'''],
        )

    # -- get / release -----------------------------------------------------------------------
    def get(self, item: pytest.Item, path: Path, scope: str) -> Started:
        key = (path, self._scope_key(item, scope))
        if key not in self.started:
            began = time.perf_counter()
            self.started[key] = self._start(item, path, scope, key[1])
            if not self.settings.reuse:  # attaching to a running one is no start to plan
                self.started[key].start_s = time.perf_counter() - began
        started = self.started[key]
        if item.nodeid not in started.tests:
            started.tests.append(item.nodeid)
        return started

    @staticmethod
    def _scope_key(item: pytest.Item, scope: str) -> str:
        if scope == "module":
            return str(item.path)
        if scope == "function":
            return item.nodeid
        return "session"

    def _name(self, topology: Topology, scope_key: str) -> str:
        if self.settings.reuse:
            return "pytest-reuse" if self.worker == "main" else f"pytest-reuse-{self.worker}"
        digest = topology.digest()[:6]
        scope_hash = format(abs(hash(scope_key)) % 0xFFFF, "04x")
        return f"pytest-{self.worker}-{digest}-{scope_hash}-{os.getpid()}"

    def _start(self, item: pytest.Item, path: Path, scope: str, scope_key: str) -> Started:
        topology = load_topology(path)
        name = self._name(topology, scope_key)
        if self.settings.reuse:
            return self._reuse_or_start(item, topology, name, scope, scope_key)
        env = Environment(topology, name, state_root=self.settings.state_root,
                          detach=self.settings.keep)
        env.up()
        return Started(env, scope, scope_key, owned=not self.settings.keep,
                       first_test=item.nodeid)

    def _reuse_or_start(self, item: pytest.Item, topology: Topology, name: str, scope: str,
                        scope_key: str) -> Started:
        with self._lock(name):
            state_file = StateStore(self.settings.state_root).env(name).state_file
            if state_file.exists():
                state = json.loads(state_file.read_text())
                if tagged_processes(state["env_id"]):
                    if state["topology_digest"] != topology.digest():
                        raise EnvironmentStateError(
                            f"--shakedown-reuse: the running environment {name!r} was started "
                            f"from a different topology than {topology.path}",
                            checked=[f"topology digest {state['topology_digest']} (running) vs "
                                     f"{topology.digest()} (now)"],
                            fix=[f"take it down: shakedown down --name {name}",
                                 "then run again with --shakedown-reuse to start a new one"],
                        )
                    env = Environment.attach(name, self.settings.state_root)
                    return Started(env, scope, scope_key, owned=False, first_test=item.nodeid)
            env = Environment(topology, name, state_root=self.settings.state_root, detach=True)
            env.up()
            return Started(env, scope, scope_key, owned=False, first_test=item.nodeid)

    @contextmanager
    def _lock(self, name: str) -> Iterator[None]:
        self.settings.state_root.mkdir(parents=True, exist_ok=True)
        with (self.settings.state_root / f".{name}.lock").open("w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def release(self, item: pytest.Item, nextitem: pytest.Item | None) -> None:
        """Take down environments whose scope ends with ``item``."""
        for key, started in list(self.started.items()):
            ends = (
                (started.scope == "function" and started.scope_key == item.nodeid)
                or (started.scope == "module" and started.scope_key == str(item.path)
                    and (nextitem is None or str(nextitem.path) != str(item.path)))
            )
            if ends:
                self._down(key, stopped_in=item.nodeid)

    def close(self) -> None:
        for key in list(self.started):
            self._down(key, stopped_in=None)

    def _down(self, key: tuple[Path, str], stopped_in: str | None) -> None:
        started = self.started.pop(key)
        self.keep_history(started.env)
        began = time.perf_counter()
        if started.owned:
            started.env.down()
        self._keep_timing(started, time.perf_counter() - began if started.owned else 0.0,
                          stopped_in)

    def _keep_timing(self, started: Started, stop_s: float, stopped_in: str | None) -> None:
        """What sharding plans with: how long the environment took to start and stop, and
        in which test's time each of those was counted (a session environment stops after
        the last test, in no test's time)."""
        topology = started.env.topology.path
        try:
            relative = str(Path(topology).resolve().relative_to(self.settings.rootdir.resolve()))
        except ValueError:
            relative = str(topology)
        target = RunPaths(self.run_dir).timing_file(started.env.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps({
            "name": started.env.name, "env_id": started.env.env_id, "topology_rel": relative,
            "scope": started.scope, "worker": self.worker, "start_s": round(started.start_s, 6),
            "stop_s": round(stop_s, 6), "started_in": started.first_test,
            "stopped_in": stopped_in, "tests": started.tests}))

    def keep_history(self, env: Environment) -> Path | None:
        """Copy the environment's history (faults, service events, test marks, workload
        operations) into the run directory, where checkers and reports read it offline."""
        source = env.paths.history_file
        if not source.exists():
            return None
        target = RunPaths(self.run_dir).history_file(env.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target
