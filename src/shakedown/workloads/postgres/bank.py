"""The bank workload: transfers move money between accounts in transactions, reads see all
balances in one statement; the total never changes. Check with
``checkers.bank(history, final_read(...), total)``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import psycopg
from psycopg import sql

from shakedown.workloads._client import Completion, DefiniteFailure
from shakedown.workloads._generators import Operation, each
from shakedown.workloads._workload import Workload
from shakedown.workloads.postgres._common import PgClient, execute, paced
from shakedown.workloads.postgres._session import Connection, PgOptions

TABLE = "shakedown_bank"
ACCOUNTS = 5
BALANCE = 100


def setup(
    conninfo: str, table: str = TABLE, *, accounts: int = ACCOUNTS, balance: int = BALANCE
) -> int:
    """(Re)create the table with ``accounts`` accounts of ``balance`` each; return the total."""
    name = sql.Identifier(table)
    rows = sql.SQL(", ").join(
        sql.SQL("({}, {})").format(sql.Literal(n), sql.Literal(balance)) for n in range(accounts)
    )
    execute(
        conninfo,
        sql.SQL("DROP TABLE IF EXISTS {}").format(name),
        sql.SQL("CREATE TABLE {} (account int PRIMARY KEY, balance bigint NOT NULL)").format(name),
        sql.SQL("INSERT INTO {} (account, balance) VALUES {}").format(name, rows),
    )
    return accounts * balance


class BankClient(PgClient):
    """``transfer`` with ``{"from": a, "to": b, "amount": n}`` moves money in one transaction
    (fails without effect on insufficient funds); ``read`` returns ``{account: balance}``
    with accounts as strings, as they read back from a JSON history."""

    def __init__(self, conninfo: str, table: str = TABLE, options: PgOptions | None = None):
        super().__init__(conninfo, table, options)

    def op_read(self, value: Any) -> tuple[Completion, Any]:
        query = sql.SQL("SELECT account, balance FROM {} ORDER BY account").format(self.table)
        rows = self.session.run(lambda conn: conn.execute(query).fetchall(), writes=False)
        return "ok", {str(account): balance for account, balance in rows}

    def op_transfer(self, value: dict[str, int]) -> tuple[Completion, Any]:
        self.session.run(lambda conn: self._transfer(conn, value), writes=True)
        return "ok", value

    def _transfer(self, conn: Connection, value: dict[str, int]) -> None:
        source, target, amount = value["from"], value["to"], value["amount"]
        lock = sql.SQL(
            "SELECT account, balance FROM {} WHERE account = ANY(%s) ORDER BY account FOR UPDATE"
        ).format(self.table)
        move = sql.SQL("UPDATE {} SET balance = balance + %s WHERE account = %s").format(self.table)
        with conn.transaction():
            balances = dict(conn.execute(lock, ([source, target],)).fetchall())
            if balances.get(source, 0) < amount or target not in balances:
                raise DefiniteFailure(f"cannot move {amount} from {source} to {target}")
            conn.execute(move, (-amount, source))
            conn.execute(move, (amount, target))


def generator(
    *,
    rate: float | None = None,
    seconds: float | None = None,
    seed: int | None = None,
    accounts: int = ACCOUNTS,
    max_amount: int = 5,
    read_share: float = 0.3,
) -> Iterator[Operation]:
    """Reads (``read_share``) and transfers of 1..max_amount between two distinct accounts."""
    chooser = random.Random(seed)

    def make() -> Operation:
        if chooser.random() < read_share:
            return Operation("read")
        source, target = chooser.sample(range(accounts), 2)
        amount = chooser.randint(1, max_amount)
        return Operation("transfer", {"from": source, "to": target, "amount": amount})

    return paced(each(make), rate, seconds)


def final_read(conninfo: str, table: str = TABLE) -> dict[str, int]:
    """All balances, ``{account: balance}``."""
    query = sql.SQL("SELECT account, balance FROM {}").format(sql.Identifier(table))
    with psycopg.connect(conninfo, connect_timeout=5) as conn:
        return {str(account): balance for account, balance in conn.execute(query).fetchall()}


WORKLOAD = Workload("bank", setup, BankClient, generator, final_read)
