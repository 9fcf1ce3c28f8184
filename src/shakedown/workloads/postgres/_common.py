"""Pieces shared by the PostgreSQL workloads: a client base that owns a ``PgSession``,
dispatch of operations to methods, table identifiers and generator pacing."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from shakedown.workloads._client import Completion, DefiniteFailure
from shakedown.workloads._generators import Operation, rate_limit, time_limit
from shakedown.workloads.postgres._session import PgOptions, PgSession


class PgClient:
    """Base of the PostgreSQL workload clients: ``invoke(f, value)`` calls the method
    ``op_<f>(value)``; an unknown ``f`` is a definite failure."""

    def __init__(self, conninfo: str, table: str, options: PgOptions | None = None) -> None:
        self.session = PgSession(conninfo, options)
        self.table = sql.Identifier(table)

    def open(self) -> None:
        self.session.open()

    def close(self) -> None:
        self.session.close()

    def invoke(self, f: str, value: Any) -> tuple[Completion, Any]:
        method = getattr(self, f"op_{f}", None)
        if method is None:
            raise DefiniteFailure(f"{type(self).__name__} has no operation {f!r}")
        result: tuple[Completion, Any] = method(value)
        return result


def execute(conninfo: str, *statements: sql.Composed) -> None:
    """Run setup statements in one transaction."""
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        for statement in statements:
            conn.execute(statement)


def paced(
    operations: Iterator[Operation], rate: float | None, seconds: float | None
) -> Iterator[Operation]:
    """Apply an optional time limit and an optional rate (operations a second, all workers)."""
    if seconds is not None:
        operations = time_limit(operations, seconds)
    if rate is not None:
        operations = rate_limit(operations, rate)
    return operations
