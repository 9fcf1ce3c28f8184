"""The ``pgbouncer`` kind's spec: a pool in front of a postgres, postgres-ha or citus service."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from .._base import Scalar, ServiceSpec, Starter


class PgBouncerSpec(ServiceSpec):
    """PgBouncer (``kind = "pgbouncer"``) pooling connections to a postgres, postgres-ha or
    citus (its coordinator) service, with the backend's superuser and password."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "user", "password", "database", "dsn",
    )
    service_fields: ClassVar[dict[str, tuple[str, ...]]] = {
        "backend": ("postgres", "postgres-ha", "citus"),
    }
    kind: Literal["pgbouncer"] = "pgbouncer"
    starter: ClassVar[Starter | None] = Starter(
        name="pool", keys='backend = "db"', needs=("postgres",), imports=("psycopg",),
        check='with psycopg.connect(shakedown_env["{name}"].url) as conn:\n'
              '    assert conn.execute("SELECT 1").fetchone() == (1,)')
    backend: str
    pool_mode: Literal["session", "transaction", "statement"] = "transaction"
    auth_type: Literal["scram-sha-256", "md5", "plain"] = "scram-sha-256"
    default_pool_size: int = Field(default=20, ge=1)
    max_client_conn: int = Field(default=200, ge=1)
    bin_dir: str | None = None
    settings: dict[str, Scalar] = {}
