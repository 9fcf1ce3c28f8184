"""The read/write register workload (Elle's ``rw-register``): transactions write unique values
to registers (one row per key) and read them, at a chosen isolation level; check with
``checkers.isolation(history, model=...)``. Registers reveal less of the version order than
lists, so the checker infers fewer dependencies from them than from ``list_append``."""

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

TABLE = "shakedown_rw_register"


def setup(conninfo: str, table: str = TABLE) -> None:
    """(Re)create the table, empty (an unwritten register reads as None)."""
    name = sql.Identifier(table)
    execute(
        conninfo,
        sql.SQL("DROP TABLE IF EXISTS {}").format(name),
        sql.SQL("CREATE TABLE {} (k int PRIMARY KEY, v int8 NOT NULL)").format(name),
    )


class RwRegisterClient(TxnClient):
    """``txn`` with ``[["w", k, v] | ["r", k, None], ...]``; a read returns the value or None."""

    WRITE = "w"

    def __init__(self, conninfo: str, table: str = TABLE, options: PgOptions | None = None, *,
                 isolation: str = "serializable") -> None:
        super().__init__(conninfo, table, options, isolation=isolation)
        self._select = sql.SQL("SELECT v FROM {} WHERE k = %s").format(self.table)
        self._write = sql.SQL(
            "INSERT INTO {0} AS t (k, v) VALUES (%s, %s) ON CONFLICT (k) DO UPDATE SET v = "
            "EXCLUDED.v"
        ).format(self.table)

    def read(self, conn: Connection, key: Any) -> int | None:
        row = conn.execute(self._select, (key,)).fetchone()
        return None if row is None else int(row[0])

    def write(self, conn: Connection, key: Any, value: Any) -> None:
        conn.execute(self._write, (key, value))


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
    """Transactions of 1..4 writes and reads over 5 active keys (see ``transactions``)."""
    return transactions("w", keys=keys, min_length=min_length, max_length=max_length,
                        read_share=read_share, max_writes_per_key=max_writes_per_key,
                        seed=seed, rate=rate, seconds=seconds)


def final_read(conninfo: str, table: str = TABLE) -> dict[int, int]:
    """Every register's value."""
    query = sql.SQL("SELECT k, v FROM {} ORDER BY k").format(sql.Identifier(table))
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        return {k: v for k, v in conn.execute(query).fetchall()}


WORKLOAD = Workload("rw_register", setup, RwRegisterClient, generator, final_read)
