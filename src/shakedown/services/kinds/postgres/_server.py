"""The PostgreSQL server that the ``postgres`` kind runs (``server``) and that other kinds of
the family reuse as their nodes (a Citus cluster's coordinator and workers): started directly
(not through ``pg_ctl -w``, which polls every 100 ms) from a copy of the cached initdb
template, with test-friendly settings unless ``durable = true``. A ``replica_of`` server is a
streaming replica: it is also a copy of the template (same system identifier as its primary, so
no base backup is needed) that streams the primary's WAL from a replication slot, and it is
ready only when it is in recovery and has replayed the primary's current LSN."""

from __future__ import annotations

import re
import secrets
import signal
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from ....errors import ShakedownError
from ....process import NotReady, copy_tree, spawn, wait_ready
from ....topology import Scalar
from ....topology.specs.postgres import PostgresSpec
from ..._base import DoctorLine, SpawnedService
from . import _extensions
from ._binaries import Template
from ._family import (
    COMMON_SETTINGS,
    SUPERUSER,
    BackgroundDrops,
    PostgresFamily,
    conf_value,
    pg_dsn,
    pg_url,
    superuser_connection,
)

TEMPLATE_DATABASE = "shakedown_template"


@dataclass(frozen=True)
class Database:
    """A database made for one test: its name and URL."""

    name: str
    url: str
    service: str
# fsync off loses data only if the machine crashes, never when a server process is killed
# (the kernel still holds what was written); synchronous_commit stays on so that a killed
# server keeps every commit it acknowledged — kill faults must not invent lost writes.
FAST_SETTINGS: dict[str, Scalar] = {
    "fsync": False,
    "full_page_writes": False,
    "shared_buffers": "16MB",
}
BASE_SETTINGS: dict[str, Scalar] = {
    **COMMON_SETTINGS,
    "listen_addresses": "127.0.0.1",
    "log_line_prefix": "%m [%p] ",
    "wal_retrieve_retry_interval": "50ms",  # its 5 s default delays replicas' first stream
    "log_checkpoints": False,  # CREATE DATABASE for each test would fill the log
}


class PostgresServer(PostgresFamily, SpawnedService):
    """A PostgreSQL server; the ``postgres`` kind is ``server.PostgresService``."""

    stop_signal: ClassVar[int] = signal.SIGINT  # "fast" shutdown: SIGTERM waits for clients
    spec: PostgresSpec

    @classmethod
    def doctor(cls) -> list[DoctorLine]:
        return cls.postgres_doctor()

    def __init__(self, spec: PostgresSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self.init_family()
        self._template: Template | None = None
        self._drops = BackgroundDrops(self.name)
        self.created_databases: list[str] = []  # by fresh_database, until dropped

    # -- addresses ---------------------------------------------------------------------------
    @property
    def database(self) -> str:
        if self.spec.databases:
            return self.spec.databases[0]
        if self.primary is not None:
            return self.primary.database
        return "postgres"

    @property
    def primary(self) -> PostgresServer | None:
        if self.spec.replica_of is None:
            return None
        peer = self.ctx.peer(self.spec.replica_of)
        assert isinstance(peer, PostgresServer)
        return peer

    @property
    def effective_password(self) -> str:
        """A replica's roles are its primary's: it has the primary's password."""
        return self.primary.password if self.primary is not None else self.password

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    def url_for(self, database: str, *, host: str | None = None, port: int | None = None) -> str:
        return pg_url(SUPERUSER, self.effective_password, host or self.host, port or self.port,
                      database)

    @property
    def dsn(self) -> str:
        return pg_dsn(SUPERUSER, self.effective_password, self.host, self.port, self.database)

    def exports(self) -> dict[str, str]:
        return {**super().exports(), "user": SUPERUSER, "password": self.effective_password,
                "database": self.database, "dsn": self.dsn}

    @property
    def pgdata(self) -> Any:
        return self.ctx.data_dir / "pgdata"

    def bin_dir(self) -> str | None:
        return self.spec.bin_dir or (self.primary.spec.bin_dir if self.primary else None)

    def version(self) -> str:
        return self.pg_version()

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> None:
        options = self.primary.spec.initdb_options if self.primary else self.spec.initdb_options
        _extensions.require(self.binaries, self.extensions, service=self.name, kind=self.kind)
        own = _extensions.own_settings(self.extensions, self._settings())
        self._template = _extensions.ensure_template_with(
            self.binaries, options, self.ctx.run_as, self.extensions,
            {key: conf_value(value) for key, value in own.items()})
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ctx.run_as:
            self.ctx.run_as.chown(self.ctx.data_dir)
        copy_tree(self._template.data_dir, self.pgdata, self.ctx.run_as)
        self.pgdata.chmod(0o700)
        self._write_settings()
        if self.primary is not None:
            self._configure_standby(self.primary)

    def _settings(self) -> dict[str, Scalar]:
        inherited = self.primary.spec.settings if self.primary is not None else {}
        settings = self.settings_over(BASE_SETTINGS, FAST_SETTINGS, inherited)
        libraries = _extensions.preload(self.extensions, {**inherited, **self.spec.settings})
        if libraries:
            settings["shared_preload_libraries"] = libraries
        settings["port"] = self.port
        return settings

    @property
    def extensions(self) -> tuple[str, ...]:
        """The extensions of the server (a replica has its primary's)."""
        return self.primary.spec.extensions if self.primary is not None else self.spec.extensions

    def _write_settings(self) -> None:
        lines = [f"{key} = {conf_value(value)}" for key, value in self._settings().items()]
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write("\n# written by shakedown\n" + "\n".join(lines) + "\n")

    def _configure_standby(self, primary: PostgresServer) -> None:
        (self.pgdata / "standby.signal").touch()
        conninfo = (f"host={primary.host} port={primary.port} user={SUPERUSER} "
                    f"password={primary.password} application_name={self.name}")
        # The primary may sit behind a link: connect where this service sees it.
        seen = self.ctx.peer_exports(primary.name)
        conninfo = conninfo.replace(f"host={primary.host} port={primary.port}",
                                    f"host={seen['host']} port={seen['port']}")
        with (self.pgdata / "postgresql.conf").open("a") as conf:
            conf.write(f"primary_conninfo = '{conninfo}'\n")
            conf.write(f"primary_slot_name = '{slot_name(self.name)}'\n")

    def start(self) -> None:
        proc = spawn([self.binaries.tool("postgres"), "-D", str(self.pgdata)], role="postgres",
                     log_path=self.log_path, env_id=self.ctx.env_id, run_as=self.ctx.run_as)
        self.processes = [proc]

    def wait_ready(self) -> None:
        if self.primary is not None:
            self.ready_seconds = self._wait_replica(self.primary)
            return
        check = f"SELECT 1 as {SUPERUSER} on {self.host}:{self.port}"
        self.ready_seconds = wait_ready(self._probe, service=self.name, check=check,
                                        timeout=self.spec.ready_timeout, watch=self.processes,
                                        interval=0.001, max_interval=0.005)

    def _passwords(self) -> list[str]:
        if self._template is None:
            return [self.effective_password]
        bootstrap = self._template.bootstrap_password
        if not self.initialized and self.primary is None:
            return [bootstrap, self.effective_password]  # first start: not yet replaced
        return [self.effective_password, bootstrap]

    def connect(self, database: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """A new connection as the superuser (autocommit)."""
        last: Exception | None = None
        for password in self._passwords():
            try:
                return superuser_connection(self.host, self.port, password, database, **kwargs)
            except psycopg.OperationalError as exc:
                last = exc
                if "password authentication failed" not in str(exc):
                    raise
        assert last is not None
        raise last

    def _probe(self) -> bool:
        with self.connect() as conn:
            conn.execute("SELECT 1")
        return True

    def _wait_replica(self, primary: PostgresServer) -> float:
        with primary.connect() as conn:
            row = conn.execute("SELECT pg_current_wal_flush_lsn()::text").fetchone()
        target = row[0] if row else "0/0"

        def caught_up() -> bool:
            with self.connect() as conn:
                row = conn.execute(
                    "SELECT pg_is_in_recovery(), "
                    "pg_last_wal_replay_lsn() >= %s::pg_lsn, pg_last_wal_replay_lsn()::text",
                    (target,)).fetchone()
            if not row or not row[0]:
                raise NotReady("not in recovery: this is not a standby")
            if not row[1]:
                raise NotReady(f"replayed {row[2]}, primary is at {target}")
            return True

        check = (f"pg_is_in_recovery() and pg_last_wal_replay_lsn() >= {target} "
                 f"(primary {primary.name}'s LSN) on {self.host}:{self.port}")
        return wait_ready(caught_up, service=self.name, check=check,
                          timeout=self.spec.ready_timeout, watch=self.processes,
                          interval=0.002, max_interval=0.02)

    def after_first_ready(self) -> None:
        if self.primary is not None:
            self.initialized = True
            return
        with self.connect() as conn:
            self.create_databases(conn)  # flushed commits from here on (synchronous_commit)
            conn.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(SUPERUSER), sql.Literal(self.password)))
            for replica in self._replica_names():
                conn.execute("SELECT pg_create_physical_replication_slot(%s, true)",
                             (slot_name(replica),))
        self.initialized = True  # the bootstrap password no longer works from here on
        self.run_init_files(self.host, self.port)
        if self.spec.init:
            self._create_template_database()

    # -- per-test databases ------------------------------------------------------------------
    def _create_template_database(self) -> None:
        """Freeze the initialized database as a template: per-test clones start from it."""
        # Cloning needs the source free of connections: connect elsewhere to do it.
        via = "template1" if self.database == "postgres" else "postgres"
        with self.connect(via) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} IS_TEMPLATE true").format(
                sql.Identifier(TEMPLATE_DATABASE), sql.Identifier(self.database)))

    def fresh_database(self, prefix: str = "test") -> Database:
        """A new database cloned from the template that holds the ``init`` SQL (empty when
        the service has no init files). Drop it with ``drop_database(name)``."""
        if self.primary is not None:
            raise ShakedownError(
                f"service {self.name!r} is a replica: it cannot create databases",
                fix=[f"call fresh_database() on its primary {self.primary.name!r}"])
        name = f"{prefix}_{secrets.token_hex(4)}"
        template = TEMPLATE_DATABASE if self.spec.init else "template1"
        # FILE_COPY copies files after a checkpoint (cheap with fsync off); WAL_LOG writes the
        # whole database to WAL, which is safer when durable but ~40% slower here.
        strategy = "WAL_LOG" if self.spec.durable else "FILE_COPY"
        with self.connect() as conn:
            conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
                sql.Identifier(name), sql.Identifier(template), sql.SQL(strategy)))
        self.created_databases.append(name)
        return Database(name=name, url=self.url_for(name), service=self.name)

    def drop_database(self, name: str, *, wait: bool = True) -> None:
        """Drop a database, closing its connections; with ``wait=False`` in the background."""
        def drop() -> None:
            with self.connect() as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                    sql.Identifier(name)))

        self._drops.run(drop, wait=wait)

    def reset_after_test(self) -> None:
        """Drop the databases the test made (in the background: the next test does not wait)."""
        for name in self.created_databases:
            self.drop_database(name, wait=False)
        self.created_databases.clear()

    def stop(self) -> None:
        self.wait_for_drops()
        super().stop()

    def wait_for_drops(self) -> None:
        self._drops.wait()

    def _replica_names(self) -> list[str]:
        return [name for name, spec in self.ctx.topology.services.items()
                if isinstance(spec, PostgresSpec) and spec.replica_of == self.name]

    def extra_state(self) -> dict[str, Any]:
        return self.family_state()

    def restore_state(self, state: Any) -> None:
        super().restore_state(state)
        self.restore_family(state)


def slot_name(service: str) -> str:
    return "shakedown_" + re.sub(r"[^a-z0-9_]", "_", service.lower())
