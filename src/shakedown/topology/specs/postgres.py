"""The ``postgres`` kind's spec: a PostgreSQL server, optionally a streaming replica."""

from __future__ import annotations

from typing import ClassVar, Literal

from .._base import PostgresServerKeys, ServiceSpec


class PostgresSpec(PostgresServerKeys, ServiceSpec):
    """A PostgreSQL server (``kind = "postgres"``), optionally a streaming replica."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "user", "password", "database", "dsn",
    )
    kind: Literal["postgres"] = "postgres"
    replica_of: str | None = None
