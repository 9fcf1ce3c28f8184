"""Spec classes of the high-availability kinds: ``etcd``, ``postgres-ha`` (Patroni),
``haproxy`` and ``pgbouncer``. Wired into ``AnyServiceSpec`` and ``KINDS`` by ``_models``.

A spec that names another service in one of its own keys (``etcd = "dcs"``,
``backend = "db"``) lists that key in ``service_fields`` with the kinds it accepts: the loader
checks the name and the kind, and makes the named service a dependency (``_named``).

Imported by ``_models`` (after ``ServiceSpec`` exists), never before it."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from ._durations import parse_duration
from ._models import Scalar, ServiceSpec

# Patroni 4 raises ttl below 20 s to 20, loop_wait below 1 s to 1 and retry_timeout below 3 s
# to 3 (patroni/config.py _validate_and_adjust_timeouts; its validator rejects them outright).
PATRONI_MIN_TTL = 20
PATRONI_MIN_LOOP_WAIT = 1
PATRONI_MIN_RETRY_TIMEOUT = 3


def _seconds(value: Any) -> Any:
    return parse_duration(value) if isinstance(value, str) else value


class EtcdSpec(ServiceSpec):
    """An etcd cluster (``kind = "etcd"``) of ``members`` processes on loopback, with fast
    heartbeat and election settings unless told otherwise."""

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url", "endpoints")
    kind: Literal["etcd"] = "etcd"
    members: int = 1
    bin_dir: str | None = None
    heartbeat_interval: float = Field(default=0.01, gt=0)
    election_timeout: float = Field(default=0.1, gt=0)
    settings: dict[str, Scalar] = {}

    @field_validator("heartbeat_interval", "election_timeout", mode="before")
    @classmethod
    def _timeouts_seconds(cls, value: Any) -> Any:
        return _seconds(value)

    @field_validator("members")
    @classmethod
    def _odd_quorum(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"an etcd cluster needs at least 1 member (got {value})")
        if value % 2 == 0:
            raise ValueError(
                f"an etcd cluster needs an odd number of members (1, 3, 5): {value} members "
                f"tolerate no more failures than {value - 1} and lose quorum when split in halves")
        return value

    @model_validator(mode="after")
    def _election_vs_heartbeat(self) -> EtcdSpec:
        if self.election_timeout < 5 * self.heartbeat_interval:
            raise ValueError(
                "etcd needs election_timeout >= 5 * heartbeat_interval "
                f"(got {self.election_timeout * 1000:g}ms and "
                f"{self.heartbeat_interval * 1000:g}ms)")
        return self


class PatroniSpec(ServiceSpec):
    """A PostgreSQL cluster managed by Patroni (``kind = "postgres-ha"``) whose DCS is the
    ``etcd`` service named by ``etcd``. Timing defaults are Patroni's minimums where they are
    safe: ``ttl`` bounds how long a crashed leader keeps its lock (failover time)."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "user", "password", "database", "dsn",
        "primary_url", "replica_url",
    )
    service_fields: ClassVar[dict[str, tuple[str, ...]]] = {"etcd": ("etcd",)}
    kind: Literal["postgres-ha"] = "postgres-ha"
    etcd: str
    members: int = 3
    synchronous_mode: bool = False
    ttl: int = PATRONI_MIN_TTL
    loop_wait: int = PATRONI_MIN_LOOP_WAIT
    retry_timeout: int = 5
    bin_dir: str | None = None
    settings: dict[str, Scalar] = {}
    databases: tuple[str, ...] = ()
    init: tuple[str, ...] = ()
    durable: bool = False
    initdb_options: tuple[str, ...] = ()
    ready_timeout: float = Field(default=60.0, gt=0)

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


class HAProxySpec(ServiceSpec):
    """HAProxy (``kind = "haproxy"``) in front of a ``postgres-ha`` service: one port routes
    to the primary, another to the replicas, chosen by Patroni's REST health checks."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "primary_url", "replica_url", "primary_port", "replica_port",
    )
    service_fields: ClassVar[dict[str, tuple[str, ...]]] = {"backend": ("postgres-ha",)}
    kind: Literal["haproxy"] = "haproxy"
    backend: str
    check_interval: float = Field(default=0.1, gt=0)
    bin_dir: str | None = None

    @field_validator("check_interval", mode="before")
    @classmethod
    def _interval_seconds(cls, value: Any) -> Any:
        return _seconds(value)


class PgBouncerSpec(ServiceSpec):
    """PgBouncer (``kind = "pgbouncer"``) pooling connections to a postgres or postgres-ha
    service, with the backend's superuser and password."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "user", "password", "database", "dsn",
    )
    service_fields: ClassVar[dict[str, tuple[str, ...]]] = {
        "backend": ("postgres", "postgres-ha"),
    }
    kind: Literal["pgbouncer"] = "pgbouncer"
    backend: str
    pool_mode: Literal["session", "transaction", "statement"] = "transaction"
    auth_type: Literal["scram-sha-256", "md5", "plain"] = "scram-sha-256"
    default_pool_size: int = Field(default=20, ge=1)
    max_client_conn: int = Field(default=200, ge=1)
    bin_dir: str | None = None
    settings: dict[str, Scalar] = {}


HA_KINDS: dict[str, type[ServiceSpec]] = {
    "etcd": EtcdSpec,
    "postgres-ha": PatroniSpec,
    "haproxy": HAProxySpec,
    "pgbouncer": PgBouncerSpec,
}

