"""The list-append workload (Elle's): transactions append unique values to lists and read
whole lists, at a chosen isolation level; check with
``checkers.isolation(history, model=...)``.

One row per key, the list an ``int8[]`` extended in place (``v || value``). A row per key
makes every append a write of that key's row, so PostgreSQL's isolation levels act on it as
they do on any read-modify-write: concurrent appends conflict (first committer wins under
REPEATABLE READ and SERIALIZABLE), a read is a single-row point read. An insert-per-element
table would turn appends into inserts that never conflict and reads into range scans, which
tests predicate locking rather than the item dependencies Elle infers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from shakedown.workloads._generators import Operation
from shakedown.workloads._workload import Workload
from shakedown.workloads.postgres._common import execute
from shakedown.workloads.postgres._session import Connection, PgOptions
from shakedown.workloads.postgres._transactions import TxnClient, transactions

TABLE = "shakedown_list_append"


def setup(conninfo: str, table: str = TABLE) -> None:
    """(Re)create the table, empty (a key's row appears with its first append)."""
    name = sql.Identifier(table)
    execute(
        conninfo,
        sql.SQL("DROP TABLE IF EXISTS {}").format(name),
        sql.SQL("CREATE TABLE {} (k int PRIMARY KEY, v int8[] NOT NULL)").format(name),
    )


class ListAppendClient(TxnClient):
    """``txn`` with ``[["append", k, v] | ["r", k, None], ...]``; a read returns the key's
    list (``[]`` for a key never appended to)."""

    WRITE = "append"

    def __init__(self, conninfo: str, table: str = TABLE, options: PgOptions | None = None, *,
                 isolation: str = "serializable") -> None:
        super().__init__(conninfo, table, options, isolation=isolation)
        self._select = sql.SQL("SELECT v FROM {} WHERE k = %s").format(self.table)
        self._append = sql.SQL(
            "INSERT INTO {0} AS t (k, v) VALUES (%s, ARRAY[%s::int8]) "
            "ON CONFLICT (k) DO UPDATE SET v = t.v || EXCLUDED.v"
        ).format(self.table)

    def read(self, conn: Connection, key: Any) -> list[int]:
        row = conn.execute(self._select, (key,)).fetchone()
        return [] if row is None else list(row[0])

    def write(self, conn: Connection, key: Any, value: Any) -> None:
        conn.execute(self._append, (key, value))


def generator(
    *,
    keys: int = 5,
    min_length: int = 1,
    max_length: int = 4,
    read_share: float = 0.5,
    max_writes_per_key: int = 32,
    seed: int | None = None,
    rate: float | None = None,
    seconds: float | None = None,
) -> Iterator[Operation]:
    """Transactions of 1..4 appends and reads over 5 active keys (see ``transactions``)."""
    return transactions("append", keys=keys, min_length=min_length, max_length=max_length,
                        read_share=read_share, max_writes_per_key=max_writes_per_key,
                        seed=seed, rate=rate, seconds=seconds)


def final_read(conninfo: str, table: str = TABLE) -> dict[int, list[int]]:
    """Every key's list."""
    query = sql.SQL("SELECT k, v FROM {} ORDER BY k").format(sql.Identifier(table))
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        return {k: list(v) for k, v in conn.execute(query).fetchall()}


WORKLOAD = Workload("list_append", setup, ListAppendClient, generator, final_read)
