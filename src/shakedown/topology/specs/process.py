"""The ``process`` kind's spec: the user's own process and how to tell it is ready."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .._base import ServiceSpec, Spec


class ReadySpec(Spec):
    """How to tell that a user's process is ready: exactly one of the strategies."""

    http: str | None = None
    status: int = 200
    tcp: bool | None = None
    command: tuple[str, ...] | None = None
    log: str | None = None
    interval: float = Field(default=0.01, gt=0)

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


class ProcessSpec(ServiceSpec):
    """The user's own process (``kind = "process"``)."""

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url")
    kind: Literal["process"] = "process"
    command: tuple[str, ...] = Field(min_length=1)
    env: dict[str, str] = {}
    cwd: str | None = None
    ready: ReadySpec = ReadySpec(tcp=True)
    url: str = "http://{host}:{port}"
    stop_signal: str = "SIGTERM"

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
