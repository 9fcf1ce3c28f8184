"""The shared bases of every spec: ``Spec`` (frozen, unknown keys are errors), ``ServiceSpec``
(keys every kind has) and ``PostgresServerKeys`` (keys every PostgreSQL kind has). Kind specs
live one per module in ``specs/`` and import only this module."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ._durations import parse_duration
from ._extensions import Extensions, PlainExtensions

Scalar = str | int | float | bool


def seconds(value: Any) -> Any:
    """A duration key: ``"500ms"`` / ``"2s"`` as seconds, numbers as they are."""
    return parse_duration(value) if isinstance(value, str) else value


@dataclass(frozen=True)
class Starter:
    """What ``shakedown init`` writes for a kind: a service ``name``, its TOML ``keys`` (after
    ``kind``), the kinds it ``needs`` in the same file (their starters' names are what ``keys``
    refer to), and a ``check`` for the starter test: Python lines that fail unless the service
    answers (``{name}`` is the service's name), with the modules they ``imports``."""

    name: str
    check: str
    keys: str = ""
    needs: tuple[str, ...] = ()
    imports: tuple[str, ...] = ()


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

    starter: ClassVar[Starter | None] = None
    """What ``shakedown init KIND`` writes; kinds without one are not offered by ``init``."""
    service_fields: ClassVar[dict[str, tuple[str, ...]]] = {}
    """Keys that name another service, with the kinds they accept: the loader checks the name
    and the kind, and makes the named service a dependency."""
    parts_named_after_service: ClassVar[bool] = False
    """True for kinds that name members, nodes or links ``NAME0`` / ``NAME-...``: the loader
    then keeps other services and links from taking such names (``_names``)."""
    fronts: ClassVar[str | None] = None
    """The key (one of ``service_fields``) naming the service this one fronts: clients of
    that service reach it through this one (HAProxy in front of a cluster)."""

    def service_refs(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        """Services named deeper in the spec than a top-level key (a router's
        ``routes.0.service``): ``{key path: (service, accepted kinds)}``, no kinds meaning any.
        The loader checks them as it checks ``service_fields``."""
        return {}

    def templated_strings(self) -> Iterator[str]:
        """The values that may hold ``{name.attr}`` references (none unless the kind says)."""
        return iter(())

    @field_validator("ready_timeout", "stop_timeout", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        return seconds(value)


class PostgresServerKeys(BaseModel):
    """Keys of every kind that runs PostgreSQL servers (postgres, postgres-ha, citus)."""

    bin_dir: str | None = None
    settings: dict[str, Scalar] = {}
    databases: tuple[str, ...] = ()
    init: tuple[str, ...] = ()
    durable: bool = False
    initdb_options: tuple[str, ...] = ()
    extensions: PlainExtensions = ()
    """Extensions preloaded (when they need it) and created in every database."""


__all__ = ["Extensions", "PlainExtensions", "PostgresServerKeys", "Scalar", "ServiceSpec", "Spec",
           "seconds"]
