"""What the PostgreSQL kinds share (plain ``postgres`` and Patroni's ``postgres-ha``, and any
later one such as ``citus``): the superuser and its generated password (kept in the state
file), URLs and DSNs, the binaries and their version, settings rendered for
``postgresql.conf`` or Patroni's ``parameters``, the first-start work (databases, init SQL)
and superuser connections. Kinds mix ``PostgresFamily`` into their service class."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from ....errors import MissingBinaryError
from ....topology import PostgresServerKeys, Scalar
from ..._base import DoctorLine, ServiceContext
from ._binaries import PgBinaries, find_binaries, run_sql_file

SUPERUSER = "postgres"

# Settings both kinds start every server with (TCP on loopback only, replication room,
# shared memory that goes with the data directory).
COMMON_SETTINGS: dict[str, Scalar] = {
    "wal_keep_size": "64MB",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "hot_standby": True,
    "unix_socket_directories": "",  # TCP on loopback only; no socket path-length trouble
    "logging_collector": False,
    # mmap: segments live in the data directory (pg_dynshmem) and go with it; posix ones would
    # stay in /dev/shm after a SIGKILL of the server.
    "dynamic_shared_memory_type": "mmap",
}


def conf_value(value: Scalar) -> str:
    """A setting as ``postgresql.conf`` spells it: booleans on/off, numbers bare, the rest
    quoted."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, int | float):
        return str(value)
    return "'" + str(value).replace("'", "''") + "'"


def parameter_value(value: Scalar) -> Scalar:
    """A setting as Patroni's ``parameters`` takes it (YAML/JSON): booleans on/off."""
    return ("on" if value else "off") if isinstance(value, bool) else value


def pg_url(user: str, password: str, host: str, port: int, database: str) -> str:
    return f"postgresql://{user}:{password}@{host}:{port}/{database}"


def pg_dsn(user: str, password: str, host: str, port: int, database: str) -> str:
    return f"host={host} port={port} user={user} password={password} dbname={database}"


def superuser_connection(host: str, port: int, password: str, database: str | None = None,
                         **kwargs: Any) -> psycopg.Connection[Any]:
    """A superuser connection (autocommit, short connect timeout)."""
    return psycopg.connect(host=host, port=port, user=SUPERUSER, password=password,
                           dbname=database or "postgres", autocommit=True, connect_timeout=2,
                           **kwargs)


class PostgresFamily:
    """Mixed into a PostgreSQL kind's service class (before its process base)."""

    spec: Any  # a PostgresServerKeys spec, narrowed by each kind
    name: str
    ctx: ServiceContext
    superuser: ClassVar[str] = SUPERUSER

    def init_family(self) -> None:
        self.password = secrets.token_urlsafe(18)
        self._binaries: PgBinaries | None = None

    @property
    def pg_keys(self) -> PostgresServerKeys:
        keys: PostgresServerKeys = self.spec
        return keys

    @property
    def user(self) -> str:
        return SUPERUSER

    @property
    def database(self) -> str:
        return self.pg_keys.databases[0] if self.pg_keys.databases else "postgres"

    @property
    def binaries(self) -> PgBinaries:
        if self._binaries is None:
            self._binaries = find_binaries(self.bin_dir())
        return self._binaries

    def bin_dir(self) -> str | None:
        return self.pg_keys.bin_dir

    def pg_version(self) -> str:
        return f"PostgreSQL {self.binaries.version}"

    @classmethod
    def postgres_doctor(cls) -> list[DoctorLine]:
        try:
            binaries = find_binaries(None)
        except MissingBinaryError as exc:
            return [DoctorLine("postgres", False, exc.what, exc.install)]
        return [DoctorLine("postgres", True,
                           f"{binaries.bin_dir}: PostgreSQL {binaries.version}")]

    def settings_over(self, base: Mapping[str, Scalar], fast: Mapping[str, Scalar],
                      *extra: Mapping[str, Scalar]) -> dict[str, Scalar]:
        """``base``, then ``fast`` unless ``durable``, then each of ``extra`` and the spec's own
        ``settings`` (the user has the last word)."""
        settings = dict(base)
        if not self.pg_keys.durable:
            settings.update(fast)
        for more in extra:
            settings.update(more)
        settings.update(self.pg_keys.settings)
        return settings

    def create_databases(self, conn: psycopg.Connection[Any]) -> None:
        """The declared databases, with flushed commits (a replica that reaches this flush
        LSN sees them)."""
        conn.execute("SET synchronous_commit = on")
        for database in self.pg_keys.databases:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))

    def run_init_files(self, host: str, port: int, where: str = "") -> None:
        """The declared ``init`` SQL files, in order, with psql against the first database."""
        for path in self.pg_keys.init:
            run_sql_file(self.binaries, service=self.name, host=host, port=port,
                         password=self.password, database=self.database,
                         path=str(self.ctx.topology.resolve_path(path)), where=where)

    def family_state(self) -> dict[str, Any]:
        return {"password": self.password}

    def restore_family(self, state: Mapping[str, Any]) -> None:
        self.password = state.get("password", self.password)


class BackgroundDrops:
    """Database drops run one at a time off the test's path (the next test does not wait for
    the last one's cleanup); ``wait`` blocks until every drop submitted so far is done."""

    def __init__(self, label: str) -> None:
        self._label = label
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def run(self, drop: Callable[[], None], *, wait: bool) -> None:
        if wait:
            drop()
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"drop-{self._label}")
            self._pool.submit(drop)

    def wait(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)
