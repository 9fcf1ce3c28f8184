"""The register workload: one row holds a value that workers read, write and
compare-and-set; written values are unique so a read tells which write it saw."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from shakedown.workloads._client import Completion
from shakedown.workloads._generators import Operation, each
from shakedown.workloads._workload import Workload
from shakedown.workloads.postgres._common import PgClient, execute, paced
from shakedown.workloads.postgres._session import PgOptions

TABLE = "shakedown_register"
KEY = 0


def setup(conninfo: str, table: str = TABLE) -> None:
    """(Re)create the table with the register's row, holding NULL."""
    name = sql.Identifier(table)
    execute(
        conninfo,
        sql.SQL("DROP TABLE IF EXISTS {}").format(name),
        sql.SQL("CREATE TABLE {} (key int PRIMARY KEY, value bigint)").format(name),
        sql.SQL("INSERT INTO {} (key, value) VALUES ({}, NULL)").format(name, sql.Literal(KEY)),
    )


class RegisterClient(PgClient):
    """``read`` returns the value (None before the first write); ``write`` sets it; ``cas``
    with ``[expected, new]`` sets it only if it holds ``expected``, else fails."""

    def __init__(self, conninfo: str, table: str = TABLE, options: PgOptions | None = None):
        super().__init__(conninfo, table, options)

    def op_read(self, value: Any) -> tuple[Completion, Any]:
        query = sql.SQL("SELECT value FROM {} WHERE key = %s").format(self.table)
        row = self.session.run(lambda conn: conn.execute(query, (KEY,)).fetchone(), writes=False)
        return "ok", None if row is None else row[0]

    def op_write(self, value: int) -> tuple[Completion, Any]:
        update = sql.SQL("UPDATE {} SET value = %s WHERE key = %s").format(self.table)
        self.session.run(lambda conn: conn.execute(update, (value, KEY)), writes=True)
        return "ok", value

    def op_cas(self, value: list[int]) -> tuple[Completion, Any]:
        expected, new = value
        update = sql.SQL("UPDATE {} SET value = %s WHERE key = %s AND value = %s").format(
            self.table
        )
        cursor = self.session.run(
            lambda conn: conn.execute(update, (new, KEY, expected)), writes=True
        )
        return ("ok" if cursor.rowcount == 1 else "fail"), value


def generator(
    *,
    rate: float | None = None,
    seconds: float | None = None,
    seed: int | None = None,
    read_share: float = 0.5,
) -> Iterator[Operation]:
    """Reads (``read_share`` of the operations), writes of unique values, and compare-and-sets
    from a recently written value to a new one."""
    chooser = random.Random(seed)
    values = itertools.count(1)

    def make() -> Operation:
        if chooser.random() < read_share:
            return Operation("read")
        new = next(values)
        if new > 1 and chooser.random() < 0.5:
            return Operation("cas", [chooser.randint(max(1, new - 3), new - 1), new])
        return Operation("write", new)

    return paced(each(make), rate, seconds)


def final_read(conninfo: str, table: str = TABLE) -> int | None:
    """The register's value."""
    query = sql.SQL("SELECT value FROM {} WHERE key = %s").format(sql.Identifier(table))
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        row = conn.execute(query, (KEY,)).fetchone()
    return None if row is None else row[0]


WORKLOAD = Workload("register", setup, RegisterClient, generator, final_read)
