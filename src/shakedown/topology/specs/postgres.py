"""The ``postgres`` kind's spec: a PostgreSQL server, optionally a streaming replica."""

from __future__ import annotations

from typing import ClassVar, Literal

from .._base import PostgresServerKeys, ServiceSpec, Starter


class PostgresSpec(PostgresServerKeys, ServiceSpec):
    """A PostgreSQL server (``kind = "postgres"``), optionally a streaming replica."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "user", "password", "database", "dsn",
    )
    kind: Literal["postgres"] = "postgres"
    starter: ClassVar[Starter | None] = Starter(
        name="db", imports=("psycopg",),
        check='with psycopg.connect(shakedown_env["{name}"].url) as conn:\n'
              '    assert conn.execute("SELECT 1").fetchone() == (1,)')
    replica_of: str | None = None
