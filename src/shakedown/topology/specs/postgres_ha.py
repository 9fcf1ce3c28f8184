"""The ``postgres-ha`` kind's spec: a PostgreSQL cluster managed by Patroni, with
Patroni's timing rules."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .._base import PostgresServerKeys, ServiceSpec

# Patroni 4 raises ttl below 20 s to 20, loop_wait below 1 s to 1 and retry_timeout below 3 s
# to 3 (patroni/config.py _validate_and_adjust_timeouts; its validator rejects them outright).
PATRONI_MIN_TTL = 20
PATRONI_MIN_LOOP_WAIT = 1
PATRONI_MIN_RETRY_TIMEOUT = 3


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
    etcd: str
    members: int = 3
    synchronous_mode: bool = False
    ttl: int = PATRONI_MIN_TTL
    loop_wait: int = PATRONI_MIN_LOOP_WAIT
    retry_timeout: int = 5
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
