"""The ``process`` kind: the user's own command, with ``{port}`` and references to other
services expanded in its arguments, environment and URL; ready by one of the strategies
tcp, http, command or log.

With ``restart = "on-failure" | "always"`` the command runs under the restart supervisor
(``process._supervise``), which starts it again with a bounded backoff and records each
restart. ``faults.kill`` kills the command alone, as a crash would, so the policy answers it
(the service comes back by itself; the kill fault's heal finds it running and does nothing);
``faults.stop`` and ``down`` stop the supervisor too, so nothing restarts. ``volumes`` are
directories under the state directory (``.shakedown/volumes/ENV/SERVICE/``), outside the data
directory, so they outlive kills and restarts and, with ``keep = true``, ``down`` and ``up``;
each is given to the command as an environment variable."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path
from typing import Any, ClassVar

from ...errors import MissingBinaryError, TopologyError
from ...process import (
    Probe,
    command_probe,
    http_probe,
    kill_tree,
    log_probe,
    read_status,
    spawn,
    tcp_probe,
    wait_ready,
)
from ...topology import Ref, expand
from ...topology.specs.process import ProcessSpec
from .._base import SpawnedService, Volume


class UserProcessService(SpawnedService, kind="process"):
    runs_as_service_user: ClassVar[bool] = False  # the user's own command runs as the user
    spec: ProcessSpec

    def _own(self) -> dict[str, str]:
        return {"host": self.host, "port": str(self.port), "python": sys.executable}

    def _expand(self, text: str) -> str:
        def lookup(ref: Ref) -> str:
            if ref.service is None:
                return self._own()[ref.attr] if ref.attr != "url" else self.url
            return self.ctx.peer_exports(ref.service)[ref.attr]

        return expand(text, lookup)

    @property
    def url(self) -> str:
        own = self._own()
        return expand(self.spec.url, lambda ref: own.get(ref.attr, ""))

    @property
    def cwd(self) -> Path:
        base = self.ctx.topology.base_dir
        return base / self.spec.cwd if self.spec.cwd else base

    def command(self) -> list[str]:
        self._check_cwd()
        argv = [self._expand(arg) for arg in self.spec.command]
        if shutil.which(argv[0], path=None) is None and not (self.cwd / argv[0]).exists():
            raise MissingBinaryError(argv[0], kind="process",
                                     searched=[f"PATH and {self.cwd}"],
                                     install=f"install {argv[0]} or correct the command")
        return argv

    def _check_cwd(self) -> None:
        if not self.cwd.is_dir():
            raise TopologyError(
                f"services.{self.name}.cwd: {self.spec.cwd} is not a directory",
                checked=[f"{self.cwd}: " + ("not a directory" if self.cwd.exists()
                                             else "no such directory")],
                fix=["create it, or correct cwd (relative to the topology file's directory)"])

    def env(self) -> dict[str, str]:
        own = {key: self._expand(value) for key, value in self.spec.env.items()}
        return {**self._volume_env(), **own}

    # -- volumes -----------------------------------------------------------------------------
    def volumes(self) -> dict[str, Volume]:
        if not self.spec.volumes:
            return {}
        root = self.ctx.volume_dir or self.ctx.data_dir / "volumes"
        return {name: Volume(name, root / (spec.path or name), spec.keep)
                for name, spec in self.spec.volumes.items()}

    def _volume_env(self) -> dict[str, str]:
        return {(self.spec.volumes[name].env or _volume_variable(name)): str(volume.path)
                for name, volume in self.volumes().items()}

    def prepare(self) -> None:
        for volume in self.volumes().values():
            volume.prepare()

    # -- restarts ----------------------------------------------------------------------------
    @property
    def restart_policy(self) -> str:
        return self.spec.restart

    @property
    def restart_status_path(self) -> Path | None:
        if self.spec.restart == "no":
            return None
        return self.ctx.data_dir / "supervisor.json"

    def restarts(self) -> int:
        """Restarts by the policy since the supervisor last started (0 without one)."""
        path = self.restart_status_path
        state = read_status(path) if path is not None else None
        return state.restarts if state is not None else 0

    def _supervised(self, argv: list[str]) -> list[str]:
        status = self.restart_status_path
        if status is None:
            return argv
        status.parent.mkdir(parents=True, exist_ok=True)
        status.unlink(missing_ok=True)
        backoff = self.spec.restart_backoff
        options = ["--policy", self.spec.restart, "--status", str(status),
                   "--backoff", str(backoff.backoff), "--max-backoff", str(backoff.max_backoff),
                   "--reset-after", str(backoff.reset_after), "--service", self.name]
        if backoff.max_restarts is not None:
            options += ["--max-restarts", str(backoff.max_restarts)]
        if self.ctx.history_file is not None and self.ctx.origin is not None:
            options += ["--history", str(self.ctx.history_file),
                        "--origin", repr(self.ctx.origin)]
        return [sys.executable, "-m", "shakedown.process._supervise", *options, "--", *argv]

    def kill(self, role: str | None = None) -> None:
        """SIGKILL the command; under a supervisor the command alone (a crash), which the
        restart policy then answers."""
        state = read_status(self.restart_status_path) if self.restart_status_path else None
        if state is None or not self.pids:
            super().kill(role)
            return
        self._select(role)  # a wrong role name is an error, as without a supervisor
        kill_tree(state.pid)

    def status(self) -> str:
        status = super().status()
        path = self.restart_status_path
        state = read_status(path) if path is not None else None
        if status == "running" and state is not None and state.state == "backoff":
            return "restarting"
        return status

    def start(self) -> None:
        command = self.command()
        argv = self._supervised(command)
        self.processes = [spawn(argv, role=Path(command[0]).name,
                                log_path=self.log_path, env_id=self.ctx.env_id, env=self.env(),
                                inherit_env=True, cwd=self.cwd)]

    @property
    def stop_signal(self) -> int:  # type: ignore[override]
        return int(getattr(signal, self.spec.stop_signal))

    def _probe(self) -> tuple[Probe, str]:
        ready = self.spec.ready
        if ready.http is not None:
            url = f"http://{self.host}:{self.port}{ready.http}"
            return http_probe(url, ready.status), f"GET {url} answers {ready.status}"
        if ready.command:
            argv = [self._expand(a) for a in ready.command]
            env = {**self.env()}
            return command_probe(argv, env=_with_path(env), cwd=self.cwd), \
                f"command {' '.join(argv)} exits 0"
        if ready.log:
            return log_probe(self.log_path, ready.log), f"log matches {ready.log!r}"
        return tcp_probe(self.host, self.port), f"TCP connect to {self.host}:{self.port}"

    def wait_ready(self) -> None:
        probe, check = self._probe()
        self.ready_seconds = wait_ready(probe, service=self.name, check=check,
                                        timeout=self.spec.ready_timeout, watch=self.processes,
                                        interval=self.spec.ready.interval)


def _with_path(env: dict[str, Any]) -> dict[str, str]:
    import os

    return {**os.environ, **env}


def _volume_variable(name: str) -> str:
    return "SHAKEDOWN_VOLUME_" + name.upper().replace("-", "_")
