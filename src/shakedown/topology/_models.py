"""Frozen models of a topology: one spec class per service kind, links, targets and
environment settings. Validation of types and keys is pydantic's; cross-references are checked
in ``_load``."""

from __future__ import annotations

import signal
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from ._durations import Target, parse_duration, parse_target

Scalar = str | int | float | bool


class Spec(BaseModel):
    """Base of every model read from the topology file: frozen, unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ServiceSpec(Spec):
    """Settings common to every service kind.

    ``exports`` names the attributes other services may reference as ``{name.attr}``.
    """

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url")
    kind: str
    depends_on: tuple[str, ...] = ()
    port: int | None = Field(default=None, ge=1, le=65535)
    ready_timeout: float = Field(default=30.0, gt=0)
    stop_timeout: float = Field(default=10.0, ge=0)

    @field_validator("ready_timeout", "stop_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return parse_duration(value) if isinstance(value, str) else value


class PostgresSpec(ServiceSpec):
    """A PostgreSQL server (``kind = "postgres"``), optionally a streaming replica."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "user", "password", "database", "dsn",
    )
    kind: Literal["postgres"] = "postgres"
    bin_dir: str | None = None
    settings: dict[str, Scalar] = {}
    databases: tuple[str, ...] = ()
    init: tuple[str, ...] = ()
    durable: bool = False
    replica_of: str | None = None
    initdb_options: tuple[str, ...] = ()


class RedisSpec(ServiceSpec):
    """A Redis server (``kind = "redis"``); persistence is off unless asked for."""

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url", "password")
    kind: Literal["redis"] = "redis"
    bin_dir: str | None = None
    persistence: bool = False
    password: bool = True
    settings: dict[str, Scalar] = {}


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


from ._aws_models import AWS_KINDS, AwsSpec, ExternalSpec  # noqa: E402
from ._ha_models import HA_KINDS, EtcdSpec, HAProxySpec, PatroniSpec, PgBouncerSpec  # noqa: E402

AnyServiceSpec = Annotated[
    PostgresSpec | RedisSpec | ProcessSpec
    | EtcdSpec | PatroniSpec | HAProxySpec | PgBouncerSpec
    | AwsSpec | ExternalSpec,
    Field(discriminator="kind"),
]
KINDS: dict[str, type[ServiceSpec]] = {
    "postgres": PostgresSpec,
    "redis": RedisSpec,
    "process": ProcessSpec,
    **HA_KINDS,
    **AWS_KINDS,
}


class LinkSpec(Spec):
    """Traffic from one service to another that goes through a fault proxy."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    source: str = Field(alias="from")
    to: str


def _valid_target(text: str) -> str:
    parse_target(text)
    return text


TargetText = Annotated[str, AfterValidator(_valid_target)]


class EnvironmentSettings(Spec):
    """``[environment]``: where data lives and how long things may take."""

    tmpfs: bool | Literal["auto"] = "auto"


class TopologyModel(Spec):
    """The whole file, as validated by pydantic (before cross-reference checks)."""

    environment: EnvironmentSettings = EnvironmentSettings()
    services: dict[str, AnyServiceSpec] = Field(min_length=1)
    links: dict[str, LinkSpec] = {}
    targets: dict[str, TargetText] = {}

    def parsed_targets(self) -> dict[str, Target]:
        return {name: parse_target(text) for name, text in self.targets.items()}
