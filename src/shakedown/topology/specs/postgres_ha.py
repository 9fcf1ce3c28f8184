"""The ``postgres-ha`` kind's spec: a PostgreSQL cluster managed by Patroni, with
Patroni's timing rules."""

from __future__ import annotations

import re
from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .._base import PostgresServerKeys, ServiceSpec, Spec, Starter

# Patroni 4 raises ttl below 20 s to 20, loop_wait below 1 s to 1 and retry_timeout below 3 s
# to 3 (patroni/config.py _validate_and_adjust_timeouts; its validator rejects them outright).
PATRONI_MIN_TTL = 20
PATRONI_MIN_LOOP_WAIT = 1
PATRONI_MIN_RETRY_TIMEOUT = 3

MAX_WORKER_GROUPS = 8
MAX_CITUS_MEMBERS = 18
"""Patroni processes (members x groups) one machine runs for a Citus cluster: each is a Python
interpreter and a postmaster; past this, a test says more about the machine than the system."""
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class CitusGroupsSpec(Spec):
    """``citus = { workers = 2, database = "app" }``: Patroni's Citus mode. The service becomes
    a coordinator group (0) and ``workers`` worker groups (1..workers), each a Patroni cluster
    of ``members`` members in one scope; Patroni creates ``database`` with the citus extension
    in every group and registers each group's primary with the coordinator."""

    workers: int = 2
    database: str | None = None
    """The Citus database (Patroni's ``citus.database``): the service's first ``databases``
    entry when not given, else ``postgres``."""

    @field_validator("workers")
    @classmethod
    def _workers_in_range(cls, value: int) -> int:
        if not 1 <= value <= MAX_WORKER_GROUPS:
            raise ValueError(
                f"citus.workers is the number of worker groups, 1 to {MAX_WORKER_GROUPS} "
                f"(got {value}); a coordinator alone is a plain postgres-ha service")
        return value

    @field_validator("database")
    @classmethod
    def _database_name(cls, value: str | None) -> str | None:
        if value is not None and not _IDENTIFIER.match(value):
            raise ValueError(
                f"citus.database = {value!r}: a database name of lower-case letters, digits "
                "and '_' (Patroni creates it in every group)")
        return value


class PatroniSpec(PostgresServerKeys, ServiceSpec):
    """A PostgreSQL cluster managed by Patroni (``kind = "postgres-ha"``) whose DCS is the
    ``etcd`` service named by ``etcd``. Timing defaults are Patroni's minimums where they are
    safe: ``ttl`` bounds how long a crashed leader keeps its lock (failover time)."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "user", "password", "database", "dsn",
        "primary_url", "replica_url", "scope", "namespace",
    )
    service_fields: ClassVar[dict[str, tuple[str, ...]]] = {"etcd": ("etcd",)}
    kind: Literal["postgres-ha"] = "postgres-ha"
    starter: ClassVar[Starter | None] = Starter(
        name="cluster", keys='etcd = "kv"\nmembers = 2', needs=("etcd",), imports=("psycopg",),
        check='with psycopg.connect(shakedown_env["{name}"].url) as conn:\n'
              '    assert conn.execute("SELECT pg_is_in_recovery()").fetchone() == (False,)')
    parts_named_after_service: ClassVar[bool] = True
    etcd: str
    members: int = 3
    synchronous_mode: bool = False
    ttl: int = PATRONI_MIN_TTL
    loop_wait: int = PATRONI_MIN_LOOP_WAIT
    retry_timeout: int = 5
    ready_timeout: float = Field(default=60.0, gt=0)
    citus: CitusGroupsSpec | None = None

    @field_validator("members")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"a postgres-ha cluster needs at least 1 member (got {value})")
        return value

    @model_validator(mode="after")
    def _patroni_timing(self) -> PatroniSpec:
        minimums = (("ttl", PATRONI_MIN_TTL), ("loop_wait", PATRONI_MIN_LOOP_WAIT),
                    ("retry_timeout", PATRONI_MIN_RETRY_TIMEOUT))
        for key, minimum in minimums:
            value = getattr(self, key)
            if value < minimum:
                raise ValueError(
                    f"{key} = {value}: Patroni 4 does not accept {key} below {minimum} seconds")
        if self.loop_wait + 2 * self.retry_timeout > self.ttl:
            raise ValueError(
                "Patroni's rule loop_wait + 2 * retry_timeout <= ttl is broken: "
                f"{self.loop_wait} + 2 * {self.retry_timeout} = "
                f"{self.loop_wait + 2 * self.retry_timeout} > ttl = {self.ttl}")
        return self

    @model_validator(mode="after")
    def _citus_size(self) -> PatroniSpec:
        if self.citus is None:
            return self
        groups = self.citus.workers + 1
        if self.members * groups > MAX_CITUS_MEMBERS:
            raise ValueError(
                f"members = {self.members} in each of {groups} Citus groups (citus.workers = "
                f"{self.citus.workers} + the coordinator's) is {self.members * groups} Patroni "
                f"members; at most {MAX_CITUS_MEMBERS} run on one machine: lower members or "
                "citus.workers")
        return self

    @property
    def citus_database(self) -> str:
        """The database Patroni's Citus mode manages (see ``CitusGroupsSpec.database``)."""
        if self.citus is not None and self.citus.database is not None:
            return self.citus.database
        return self.databases[0] if self.databases else "postgres"
