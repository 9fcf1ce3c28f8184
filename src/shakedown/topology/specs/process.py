"""The ``process`` kind's spec: the user's own process and how to tell it is ready."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import PurePosixPath
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .._base import ServiceSpec, Spec, Starter, seconds


class ReadySpec(Spec):
    """How to tell that a user's process is ready: exactly one of the strategies."""

    http: str | None = None
    status: int = 200
    tcp: bool | None = None
    command: tuple[str, ...] | None = None
    log: str | None = None
    interval: float = Field(default=0.01, gt=0)

    @field_validator("log")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> ReadySpec:
        chosen = [k for k in ("http", "tcp", "command", "log") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError(
                "give exactly one readiness strategy: http = '/path', tcp = true, "
                f"command = [...] or log = 'regex' (got {chosen or 'none'})"
            )
        return self

    @property
    def strategy(self) -> str:
        return next(k for k in ("http", "tcp", "command", "log") if getattr(self, k))


class VolumeSpec(Spec):
    """A named directory that outlives the process: ``path`` relative to the environment's
    volumes directory in the state directory (the volume's name by default), ``keep`` to
    keep it across ``down`` and ``up``, ``env`` the variable that gives the process its path
    (``SHAKEDOWN_VOLUME_NAME`` by default)."""

    path: str | None = None
    keep: bool = False
    env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")

    @field_validator("path")
    @classmethod
    def _inside_state_dir(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = PurePosixPath(value).parts
        if not parts or PurePosixPath(value).is_absolute() or ".." in parts:
            raise ValueError(
                f"volume path {value!r} is outside the state directory: give a relative path "
                "without '..' (it is placed under .shakedown/volumes/ENV/SERVICE/)")
        return value


class RestartSpec(Spec):
    """The bounded backoff between restarts: doubling from ``backoff`` to ``max_backoff``,
    back to ``backoff`` after the process ran ``reset_after``; at most ``max_restarts`` in a
    row (unbounded when not set)."""

    backoff: float = Field(default=0.1, gt=0)
    max_backoff: float = Field(default=5.0, gt=0)
    reset_after: float = Field(default=10.0, gt=0)
    max_restarts: int | None = Field(default=None, ge=0)

    @field_validator("backoff", "max_backoff", "reset_after", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return seconds(value)


class ProcessSpec(ServiceSpec):
    """The user's own process (``kind = "process"``)."""

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url")
    kind: Literal["process"] = "process"
    starter: ClassVar[Starter | None] = Starter(
        name="app", imports=("httpx",),
        keys='command = ["python3", "-m", "http.server", "--bind", "127.0.0.1", "{port}"]\n'
             'ready = { http = "/" }',
        check='assert httpx.get(shakedown_env["{name}"].url, timeout=5).status_code == 200')
    command: tuple[str, ...] = Field(min_length=1)
    env: dict[str, str] = {}
    cwd: str | None = None
    ready: ReadySpec = ReadySpec(tcp=True)
    url: str = "http://{host}:{port}"
    stop_signal: str = "SIGTERM"
    restart: Literal["no", "on-failure", "always"] = "no"
    restart_backoff: RestartSpec = RestartSpec()
    volumes: dict[str, VolumeSpec] = {}

    @field_validator("volumes")
    @classmethod
    def _volume_names(cls, value: dict[str, VolumeSpec]) -> dict[str, VolumeSpec]:
        for name in value:
            if not name or not all(c.isalnum() or c in "-_" for c in name):
                raise ValueError(f"volume name {name!r}: use letters, digits, '-' and '_'")
        paths = [spec.path or name for name, spec in value.items()]
        if len(set(paths)) != len(paths):
            raise ValueError(f"two volumes share a path: {sorted(paths)}")
        return value

    @field_validator("env")
    @classmethod
    def _variable_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                raise ValueError(f"{name!r} is not an environment variable name (letters, "
                                 "digits and '_', not starting with a digit)")
        return value

    @field_validator("stop_signal")
    @classmethod
    def _known_signal(cls, value: str) -> str:
        name = value if value.startswith("SIG") else f"SIG{value}"
        if not hasattr(signal, name):
            raise ValueError(f"{value!r} is not a signal name (e.g. SIGTERM, SIGINT)")
        return name

    def templated_strings(self) -> Iterator[str]:
        yield from self.command
        yield from self.env.values()
        yield self.url
        if self.ready.command:
            yield from self.ready.command
