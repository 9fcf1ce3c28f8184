"""The append (set) workload: workers insert unique ids into one table; acknowledged inserts
must all be there at the end. Check with ``checkers.set_full(history, final_read(...))``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from shakedown.workloads._client import Completion
from shakedown.workloads._generators import Operation, sequential
from shakedown.workloads._workload import Workload
from shakedown.workloads.postgres._common import PgClient, execute, paced
from shakedown.workloads.postgres._session import PgOptions

TABLE = "shakedown_append"


def setup(conninfo: str, table: str = TABLE) -> None:
    """(Re)create the table, empty."""
    name = sql.Identifier(table)
    execute(
        conninfo,
        sql.SQL("DROP TABLE IF EXISTS {}").format(name),
        sql.SQL("CREATE TABLE {} (id bigint PRIMARY KEY)").format(name),
    )


class AppendClient(PgClient):
    """``add`` inserts one id (autocommit); ``read`` returns all ids, sorted."""

    def __init__(self, conninfo: str, table: str = TABLE, options: PgOptions | None = None):
        super().__init__(conninfo, table, options)

    def op_add(self, value: int) -> tuple[Completion, Any]:
        insert = sql.SQL("INSERT INTO {} (id) VALUES (%s)").format(self.table)
        self.session.run(lambda conn: conn.execute(insert, (value,)), writes=True)
        return "ok", value

    def op_read(self, value: Any) -> tuple[Completion, Any]:
        query = sql.SQL("SELECT id FROM {} ORDER BY id").format(self.table)
        rows = self.session.run(lambda conn: conn.execute(query).fetchall(), writes=False)
        return "ok", [row[0] for row in rows]


def generator(
    *, rate: float | None = None, seconds: float | None = None, start: int = 0
) -> Iterator[Operation]:
    """``add`` with ids start, start+1, ... (optionally rate- and time-limited)."""
    return paced(sequential("add", start), rate, seconds)


def final_read(conninfo: str, table: str = TABLE) -> set[int]:
    """All ids in the table."""
    query = sql.SQL("SELECT id FROM {}").format(sql.Identifier(table))
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        return {row[0] for row in conn.execute(query).fetchall()}


WORKLOAD = Workload("append", setup, AppendClient, generator, final_read)
