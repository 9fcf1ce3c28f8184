"""The ``external`` kind's spec: a service shakedown does not start (staging), with
its URL and an optional readiness check."""

from __future__ import annotations

from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import field_validator, model_validator

from .._base import ServiceSpec, Spec


class ExternalReadySpec(Spec):
    """How to tell that an external service is up: one of http, tcp, sql, or none."""

    http: str | None = None
    status: int | None = None
    tcp: bool | None = None
    sql: str | None = None
    none: bool | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> ExternalReadySpec:
        chosen = [k for k in ("http", "tcp", "sql", "none") if getattr(self, k)]
        if len(chosen) != 1:
            raise ValueError("give exactly one readiness strategy: http = '/path', tcp = true, "
                             f"sql = 'SELECT 1' or none = true (got {chosen or 'none'})")
        if self.status is not None and self.http is None:
            raise ValueError("status goes with http = '/path'")
        if self.http is not None and not self.http.startswith("/"):
            raise ValueError(f"http = {self.http!r}: give a path starting with '/'")
        return self

    @property
    def strategy(self) -> str:
        return next(k for k in ("http", "tcp", "sql", "none") if getattr(self, k))


def _ready_shorthand(value: Any) -> Any:
    # ready = "tcp" / "none" / "sql" / "http" as shorthands for the tables.
    if isinstance(value, str):
        shorthands: dict[str, dict[str, Any]] = {
            "tcp": {"tcp": True}, "none": {"none": True}, "sql": {"sql": "SELECT 1"},
            "http": {"http": "/"}}
        if value not in shorthands:
            raise ValueError(f"ready = {value!r}: use one of {', '.join(shorthands)} or a table "
                             "such as { http = \"/health\" }")
        return shorthands[value]
    return value


class ExternalSpec(ServiceSpec):
    """A service shakedown does not start, known only by its URL (``kind = "external"``):
    staging, a shared database. ``${VAR}`` in the URL is read from the environment."""

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url")
    kind: Literal["external"] = "external"
    url: str
    ready: ExternalReadySpec | None = None

    _ready = field_validator("ready", mode="before")(_ready_shorthand)

    @field_validator("url")
    @classmethod
    def _absolute_url(cls, value: str) -> str:
        if "${" in value:
            return value  # checked once expanded, when the environment starts
        parts = urlsplit(value)
        if not parts.scheme or not parts.hostname:
            raise ValueError(f"{value!r} is not an absolute URL (e.g. https://staging.example/api"
                             ", postgresql://user@db.example:5432/app)")
        try:
            parts.port  # noqa: B018 - raises on a bad port
        except ValueError as exc:
            raise ValueError(f"{value!r}: {exc}") from None
        return value

    @field_validator("port")
    @classmethod
    def _no_port(cls, value: int | None) -> int | None:
        if value is not None:
            raise ValueError("an external service has no local port: put the port in url")
        return value
