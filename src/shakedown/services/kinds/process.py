"""The ``process`` kind: the user's own command, with ``{port}`` and references to other
services expanded in its arguments, environment and URL; ready by one of the strategies
tcp, http, command or log."""

from __future__ import annotations

import shutil
import signal
import sys
from pathlib import Path
from typing import Any, ClassVar

from ...errors import MissingBinaryError
from ...process import (
    Probe,
    command_probe,
    http_probe,
    log_probe,
    spawn,
    stop_group,
    tcp_probe,
    wait_ready,
)
from ...topology import Ref, expand
from ...topology.specs.process import ProcessSpec
from .._base import SpawnedService


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
        argv = [self._expand(arg) for arg in self.spec.command]
        if shutil.which(argv[0], path=None) is None and not (self.cwd / argv[0]).exists():
            raise MissingBinaryError(argv[0], kind="process",
                                     searched=[f"PATH and {self.cwd}"],
                                     install=f"install {argv[0]} or correct the command")
        return argv

    def env(self) -> dict[str, str]:
        return {key: self._expand(value) for key, value in self.spec.env.items()}

    def start(self) -> None:
        self.processes = [spawn(self.command(), role=Path(self.spec.command[0]).name,
                                log_path=self.log_path, env_id=self.ctx.env_id, env=self.env(),
                                inherit_env=True, cwd=self.cwd)]

    def stop(self) -> None:
        sig = getattr(signal, self.spec.stop_signal)
        for proc in self.processes:
            stop_group(proc, sig, self.spec.stop_timeout)

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
