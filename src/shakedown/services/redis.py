"""The ``redis`` kind: ``redis-server`` on loopback with a generated password and persistence
off unless ``persistence = true``; ready when PING answers."""

from __future__ import annotations

import secrets
import subprocess
from typing import Any, ClassVar

import redis

from ..process import spawn, wait_ready
from ..topology.specs.redis import RedisSpec
from ._base import ProcessService, find_binary

INSTALL_HINT = "apt-get install -y redis-server"


def find_redis(bin_dir: str | None) -> str:
    return find_binary("redis-server", kind="redis", bin_dir=bin_dir, system_dirs="/usr/bin",
                       install=INSTALL_HINT)


class RedisService(ProcessService):
    kind: ClassVar[str] = "redis"
    spec: RedisSpec

    def __init__(self, spec: RedisSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self.password = secrets.token_urlsafe(18) if spec.password else ""
        self._binary: str | None = None

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = find_redis(self.spec.bin_dir)
        return self._binary

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def exports(self) -> dict[str, str]:
        return {**super().exports(), "password": self.password}

    def version(self) -> str:
        out = subprocess.run([self.binary, "--version"], capture_output=True, text=True,
                             check=False).stdout.split()
        version = next((w.split("=", 1)[1] for w in out if w.startswith("v=")), "?")
        return f"Redis {version}"

    def prepare(self) -> None:
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ctx.run_as:
            self.ctx.run_as.chown(self.ctx.data_dir)

    def _arguments(self) -> list[str]:
        args = {
            "port": str(self.port), "bind": self.host, "dir": str(self.ctx.data_dir),
            "daemonize": "no", "protected-mode": "yes", "logfile": '""',
            # A rewritten process title would overwrite the environment tag in /proc.
            "set-proc-title": "no",
        }
        if self.spec.persistence:
            args.update({"appendonly": "yes", "appendfsync": "everysec"})
        else:
            args.update({"appendonly": "no", "save": '""'})
        if self.password:
            args["requirepass"] = self.password
        args.update({key: str(value) for key, value in self.spec.settings.items()})
        flat = []
        for key, value in args.items():
            flat.extend([f"--{key}", "" if value == '""' else value])
        return flat

    def start(self) -> None:
        self.processes = [spawn([self.binary, *self._arguments()], role="redis-server",
                                log_path=self.log_path, env_id=self.ctx.env_id,
                                run_as=self.ctx.run_as)]

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password or None,
                           socket_connect_timeout=1, socket_timeout=2, **kwargs)

    def wait_ready(self) -> None:
        def ping() -> bool:
            with self.client() as client:
                return bool(client.ping())

        self.ready_seconds = wait_ready(ping, service=self.name,
                                        check=f"PING on {self.host}:{self.port}",
                                        timeout=self.spec.ready_timeout, watch=self.processes,
                                        interval=0.001, max_interval=0.005)

    def extra_state(self) -> dict[str, Any]:
        return {"password": self.password}

    def restore_state(self, state: Any) -> None:
        super().restore_state(state)
        self.password = state.get("password", self.password)
