"""The ``pgbouncer`` kind: Debian's PgBouncer pooling connections to a ``postgres`` or
``postgres-ha`` service (for the latter: its primary through HAProxy when one fronts the
cluster; without HAProxy, the member that was leader when PgBouncer started).
Clients log in as the backend's superuser with the backend's password, checked by PgBouncer
(``auth_type``, SCRAM by default) against an ``auth_file`` that holds the password, which
PgBouncer also uses to log in to the server. Runs as the unprivileged service user (PgBouncer
refuses root), on loopback only, no Unix socket. Ready when ``SELECT 1`` through it answers.

With ``pool_mode = "transaction"`` (the default), server-side prepared statements do not
survive between transactions: psycopg clients should pass ``prepare_threshold=None``."""

from __future__ import annotations

import signal
from typing import Any, ClassVar

import psycopg

from ...process import spawn
from ...topology.specs.pgbouncer import PgBouncerSpec
from .._base import Binary, ServerService


class PgBouncerService(ServerService, kind="pgbouncer"):
    binary: ClassVar[Binary] = Binary("pgbouncer", "apt-get install -y pgbouncer")
    product: ClassVar[str] = "PgBouncer"
    stop_signal: ClassVar[int] = signal.SIGTERM  # immediate; SIGINT waits for clients
    spec: PgBouncerSpec

    def __init__(self, spec: PgBouncerSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._backend: dict[str, str] = {}

    def backend_exports(self) -> dict[str, str]:
        """The backend's address and credentials as this service sees it (a link's proxy
        address once links exist), read once at prepare."""
        if not self._backend:
            self._backend = dict(self.ctx.peer_exports(self.spec.backend))
        return self._backend

    # -- addresses ---------------------------------------------------------------------------
    @property
    def user(self) -> str:
        return self.backend_exports()["user"]

    @property
    def password(self) -> str:
        return self.backend_exports()["password"]

    @property
    def database(self) -> str:
        return self.backend_exports()["database"]

    def url_for(self, database: str) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{database}"

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    @property
    def dsn(self) -> str:
        return (f"host={self.host} port={self.port} user={self.user} "
                f"password={self.password} dbname={self.database}")

    def exports(self) -> dict[str, str]:
        return {**super().exports(), "user": self.user, "password": self.password,
                "database": self.database, "dsn": self.dsn}

    @property
    def config_path(self) -> Any:
        return self.ctx.data_dir / "pgbouncer.ini"

    def _config(self) -> str:
        backend = self.backend_exports()
        settings: dict[str, Any] = {
            "listen_addr": self.host,
            "listen_port": self.port,
            "unix_socket_dir": "",
            "auth_type": self.spec.auth_type,
            "auth_file": str(self.ctx.data_dir / "userlist.txt"),
            "pool_mode": self.spec.pool_mode,
            "default_pool_size": self.spec.default_pool_size,
            "max_client_conn": self.spec.max_client_conn,
            "admin_users": backend["user"],
            "ignore_startup_parameters": "extra_float_digits,options",
            # Its 15 s default would keep a client waiting that long after a backend that was
            # not up yet (or failing over) refused the first login.
            "server_login_retry": 0.2,
            "logfile": "",
            "pidfile": "",
        }
        settings.update(self.spec.settings)
        lines = ["[databases]", f"* = host={backend['host']} port={backend['port']}",
                 "", "[pgbouncer]"]
        lines += [f"{key} = {_value(value)}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        self.binary_path  # noqa: B018 - a missing binary fails before anything starts
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        userlist = self.ctx.data_dir / "userlist.txt"
        userlist.write_text(f'"{_quote(self.user)}" "{_quote(self.password)}"\n')
        userlist.chmod(0o600)
        self.config_path.write_text(self._config())
        self.config_path.chmod(0o600)
        if self.ctx.run_as:
            for path in (self.ctx.data_dir, userlist, self.config_path):
                self.ctx.run_as.chown(path)

    def start(self) -> None:
        self.processes = [spawn([self.binary_path, str(self.config_path)], role="pgbouncer",
                                log_path=self.log_path, env_id=self.ctx.env_id,
                                run_as=self.ctx.run_as)]

    def connect(self, database: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """A connection through PgBouncer (autocommit, no server-side prepared statements)."""
        return psycopg.connect(host=self.host, port=self.port, user=self.user,
                               password=self.password, dbname=database or self.database,
                               autocommit=True, connect_timeout=2, prepare_threshold=None,
                               **kwargs)

    def wait_ready(self) -> None:
        def probe() -> bool:
            with self.connect() as conn:
                return conn.execute("SELECT 1").fetchone() == (1,)

        check = f"SELECT 1 through PgBouncer on {self.host}:{self.port}"
        self.await_ready(probe, check, interval=0.005, max_interval=0.05)

    def extra_state(self) -> dict[str, Any]:
        return {"backend": self._backend}

    def restore_state(self, state: Any) -> None:
        super().restore_state(state)
        self._backend = dict(state.get("backend") or {})


def _quote(text: str) -> str:
    return text.replace('"', '""')


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


