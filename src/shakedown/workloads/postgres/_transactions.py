"""What the transactional workloads (``list_append``, ``rw_register``) share: a client that
runs one transaction of micro-operations at a chosen PostgreSQL isolation level, retrying
nothing (a serialization failure or deadlock is a ``fail``, a lost connection with writes in
flight an ``info``), and the generator of transactions over a small rolling key set."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from typing import Any

from psycopg import sql

from shakedown.workloads._client import Completion, DefiniteFailure
from shakedown.workloads._generators import Operation, each
from shakedown.workloads.postgres._common import PgClient, paced
from shakedown.workloads.postgres._session import Connection, PgOptions

LEVELS = {
    "serializable": "SERIALIZABLE",
    "repeatable-read": "REPEATABLE READ",
    "read-committed": "READ COMMITTED",
    "read-uncommitted": "READ UNCOMMITTED",
}
F = "txn"


def level_sql(isolation: str) -> sql.SQL:
    try:
        return sql.SQL(LEVELS[isolation])
    except KeyError:
        raise ValueError(
            f"unknown isolation level {isolation!r}: choose one of {', '.join(LEVELS)}"
        ) from None


class TxnClient(PgClient):
    """``txn`` with a list of micro-operations runs them in one transaction at ``isolation``
    and returns them with every read's result filled in. Subclasses implement
    ``read(conn, key)`` and ``write(conn, key, value)`` for their micro-operations."""

    WRITE = "w"

    def __init__(self, conninfo: str, table: str, options: PgOptions | None = None, *,
                 isolation: str = "serializable") -> None:
        super().__init__(conninfo, table, options)
        self.isolation = isolation
        self._begin = sql.SQL("SET TRANSACTION ISOLATION LEVEL {}").format(level_sql(isolation))

    def op_txn(self, value: list[list[Any]]) -> tuple[Completion, Any]:
        writes = any(op[0] == self.WRITE for op in value)
        done = self.session.run(lambda conn: self._transaction(conn, value), writes=writes)
        return "ok", done

    def _transaction(self, conn: Connection, ops: list[list[Any]]) -> list[list[Any]]:
        done: list[list[Any]] = []
        with conn.transaction():
            conn.execute(self._begin)
            for f, key, value in ops:
                if f == "r":
                    done.append([f, key, self.read(conn, key)])
                elif f == self.WRITE:
                    self.write(conn, key, value)
                    done.append([f, key, value])
                else:
                    raise DefiniteFailure(f"{type(self).__name__} has no micro-operation {f!r}")
        return done

    def read(self, conn: Connection, key: Any) -> Any:
        raise NotImplementedError

    def write(self, conn: Connection, key: Any, value: Any) -> None:
        raise NotImplementedError


def transactions(
    write: str,
    *,
    keys: int,
    min_length: int,
    max_length: int,
    read_share: float,
    max_writes_per_key: int,
    seed: int | None,
    rate: float | None,
    seconds: float | None,
) -> Iterator[Operation]:
    """Transactions of ``min_length``..``max_length`` micro-operations over ``keys`` active
    keys, reads with probability ``read_share``, writes of unique values (1, 2, ...). A key
    written ``max_writes_per_key`` times is retired for a fresh one, as Elle's generator does,
    so reads stay short while contention stays high."""
    if not 1 <= min_length <= max_length or keys < 1 or max_writes_per_key < 1:
        raise ValueError(
            f"need 1 <= min_length <= max_length, keys >= 1 and max_writes_per_key >= 1; got "
            f"min_length={min_length}, max_length={max_length}, keys={keys}, "
            f"max_writes_per_key={max_writes_per_key}"
        )
    chooser = random.Random(seed)
    values = itertools.count(1)
    active = list(range(keys))
    fresh = itertools.count(keys)
    written = dict.fromkeys(active, 0)

    def make() -> Operation:
        ops: list[list[Any]] = []
        for _ in range(chooser.randint(min_length, max_length)):
            slot = chooser.randrange(keys)
            key = active[slot]
            if chooser.random() < read_share:
                ops.append(["r", key, None])
                continue
            ops.append([write, key, next(values)])
            written[key] += 1
            if written[key] >= max_writes_per_key:
                active[slot] = next(fresh)
                written[active[slot]] = 0
        return Operation(F, ops)

    return paced(each(make), rate, seconds)
