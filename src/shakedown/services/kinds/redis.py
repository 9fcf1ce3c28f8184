"""The ``redis`` kind: ``redis-server`` on loopback with a generated password (given on stdin,
never on the command line) and persistence off unless ``persistence = true``; ready when PING
answers."""

from __future__ import annotations

import secrets
from typing import Any, ClassVar

import redis

from ...process import spawn
from ...topology.specs.redis import RedisSpec
from .._base import Binary, ServerService


class RedisService(ServerService, kind="redis"):
    binary: ClassVar[Binary] = Binary("redis-server", "apt-get install -y redis-server",
                                      version_pattern=r"v=(\S+)")
    product: ClassVar[str] = "Redis"
    spec: RedisSpec

    def __init__(self, spec: RedisSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self.password = secrets.token_urlsafe(18) if spec.password else ""

    @property
    def url(self) -> str:
        # "default:" spelled out: redis-cli/redis-benchmark -u reject an empty user name
        auth = f"default:{self.password}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def exports(self) -> dict[str, str]:
        return {**super().exports(), "password": self.password}

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
        args.update({key: str(value) for key, value in self.spec.settings.items()})
        flat = []
        for key, value in args.items():
            flat.extend([f"--{key}", "" if value == '""' else value])
        return flat

    def start(self) -> None:
        # The password goes in through stdin ("-": read the configuration from stdin), never
        # on the command line, where every local user reads it with ps.
        secret = f"requirepass {_quote(self.password)}\n" if self.password else ""
        self.processes = [spawn([self.binary_path, "-", *self._arguments()],
                                role="redis-server", log_path=self.log_path,
                                env_id=self.ctx.env_id, run_as=self.ctx.run_as,
                                stdin_data=secret.encode())]

    def client(self, **kwargs: Any) -> redis.Redis:
        return redis.Redis(host=self.host, port=self.port, password=self.password or None,
                           socket_connect_timeout=1, socket_timeout=2, **kwargs)

    def wait_ready(self) -> None:
        def ping() -> bool:
            with self.client() as client:
                return bool(client.ping())

        self.await_ready(ping, f"PING on {self.host}:{self.port}")

    def extra_state(self) -> dict[str, Any]:
        return {"password": self.password}

    def restore_state(self, state: Any) -> None:
        super().restore_state(state)
        self.password = state.get("password", self.password)


def _quote(value: str) -> str:
    """A Redis configuration string: double-quoted, backslash and quote escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
