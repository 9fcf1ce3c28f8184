"""One PostgreSQL connection for a workload client: short connect and statement timeouts, a
client-side watchdog so a paused or partitioned server cannot hang a worker, reconnection
after a lost connection (the target may have failed over behind a proxy), and the
classification of errors into definite failures and unknown outcomes."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any, TypeVar

import psycopg

from shakedown.workloads._client import DefiniteFailure, IndeterminateFailure

T = TypeVar("T")
Connection = psycopg.Connection[Any]


@dataclass(frozen=True)
class PgOptions:
    """Timeouts of a workload connection. ``op_timeout_s`` is enforced on the client: when an
    operation takes longer (server paused, packets dropped) the socket is shut down, and the
    operation ends as unknown (a write) or failed (a read). libpq's minimum connect timeout
    is 2 s."""

    connect_timeout_s: int = 2
    statement_timeout_s: float = 2.0
    op_timeout_s: float = 5.0
    application_name: str = "shakedown-workload"


class PgSession:
    """A lazily (re)connected connection in autocommit mode; ``run`` performs one operation."""

    def __init__(self, conninfo: str, options: PgOptions | None = None) -> None:
        self.conninfo = conninfo
        self.options = options or PgOptions()
        self._conn: Connection | None = None

    def open(self) -> None:
        """Connect now (raises ``DefiniteFailure`` when the server cannot be reached)."""
        self._connection()

    def close(self) -> None:
        if self._conn is not None:
            with suppress(Exception):
                self._conn.close()
            self._conn = None

    def run(self, work: Callable[[Connection], T], *, writes: bool) -> T:
        """Perform ``work`` on a live connection. A server-reported error leaves the
        connection usable and the transaction rolled back: ``DefiniteFailure``. A lost
        connection makes the outcome of a write unknown (``IndeterminateFailure``); a read
        has no effect, so it is a ``DefiniteFailure``."""
        conn = self._connection()
        try:
            with _watchdog(conn, self.options.op_timeout_s):
                return work(conn)
        except (psycopg.Error, OSError) as exc:
            raise self._classified(exc, conn, writes) from exc

    def _connection(self) -> Connection:
        if self._conn is not None and not (self._conn.closed or self._conn.broken):
            return self._conn
        self.close()
        try:
            self._conn = self._connect()
        except (psycopg.Error, OSError) as exc:
            raise DefiniteFailure(f"cannot connect: {_first_line(exc)}") from exc
        return self._conn

    def _connect(self) -> Connection:
        conn = psycopg.connect(
            self.conninfo,
            autocommit=True,
            connect_timeout=self.options.connect_timeout_s,
            application_name=self.options.application_name,
        )
        timeout_ms = int(self.options.statement_timeout_s * 1000)
        try:
            with _watchdog(conn, self.options.op_timeout_s):
                conn.execute(f"SET statement_timeout = {timeout_ms}")
        except BaseException:
            conn.close()
            raise
        return conn

    def _classified(self, exc: BaseException, conn: Connection, writes: bool) -> Exception:
        text = _first_line(exc)
        if not (conn.closed or conn.broken):
            if writes and _outcome_unknown(exc):
                return IndeterminateFailure(f"interrupted, outcome unknown: {text}")
            return DefiniteFailure(f"server refused: {text}")
        self.close()
        if writes:
            return IndeterminateFailure(f"connection lost, outcome unknown: {text}")
        return DefiniteFailure(f"connection lost during a read: {text}")


# SQLSTATE classes after which a write may have committed although the statement failed: a
# cancel or shutdown (57) can land after a remote node committed (Citus routes a single-shard
# insert to a worker and the coordinator's statement timeout fires while it waits for the
# answer), and a connection error reported by the server (08) can be a coordinator's lost link
# to a worker after that worker's commit.
_UNKNOWN_OUTCOME_CLASSES = ("57", "08")


def _outcome_unknown(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None)
    return isinstance(state, str) and state[:2] in _UNKNOWN_OUTCOME_CLASSES


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else ''}"


@contextmanager
def _watchdog(conn: Connection, seconds: float) -> Iterator[None]:
    """Shut the connection's socket down if the block takes longer than ``seconds``: the
    blocked call then fails at once with a lost connection instead of waiting forever.

    The timer can fire just as the block completes (``cancel`` does not stop a callback that
    already runs): the socket is then shut although the operation finished, so the connection
    is closed here and the next operation reconnects instead of failing on a dead socket."""
    lock = threading.Lock()
    state = {"done": False, "fired": False}

    def fire() -> None:
        with lock:
            if state["done"]:
                return
            state["fired"] = True
            _shutdown_socket(conn.pgconn.socket)

    timer = threading.Timer(seconds, fire)
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        with lock:
            state["done"] = True
        if state["fired"]:
            with suppress(Exception):
                conn.close()


def _shutdown_socket(fd: int) -> None:
    with suppress(OSError), socket.socket(fileno=os.dup(fd)) as duplicate:
        duplicate.shutdown(socket.SHUT_RDWR)
