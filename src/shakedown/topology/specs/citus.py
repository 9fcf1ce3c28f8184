"""The ``citus`` kind's spec: a Citus cluster of a coordinator and ``workers`` workers, each a
PostgreSQL server."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .._base import Extensions, PostgresServerKeys, ServiceSpec

MAX_WORKERS = 16
"""Each worker is a server with its own memory and maintenance daemons; past this many, one
machine runs a cluster that says little about a real one."""


class CitusSpec(PostgresServerKeys, ServiceSpec):
    """A Citus cluster (``kind = "citus"``): a coordinator and ``workers`` workers (default 2)
    started from the initdb template cache, Citus first in ``shared_preload_libraries``.
    ``settings``, ``extensions`` and ``databases`` apply on every node; ``init`` runs on the
    coordinator once the workers are registered (Citus propagates what it distributes).
    ``spare_workers`` start with the cluster but join a database only when a test adds them
    (``add_worker``), to rebalance onto."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "user", "password", "database", "dsn", "coordinator_url",
        "worker_urls",
    )
    kind: Literal["citus"] = "citus"
    parts_named_after_service: ClassVar[bool] = True
    workers: int = 2
    spare_workers: int = Field(default=0, ge=0)
    extensions: Extensions = ()
    ready_timeout: float = Field(default=60.0, gt=0)

    @field_validator("workers")
    @classmethod
    def _workers_in_range(cls, value: int) -> int:
        if not 1 <= value <= MAX_WORKERS:
            raise ValueError(
                f"a citus cluster has 1 to {MAX_WORKERS} workers; "
                "a coordinator alone is kind = \"postgres\"")
        return value

    @model_validator(mode="after")
    def _nodes_in_range(self) -> CitusSpec:
        if self.workers + self.spare_workers > MAX_WORKERS:
            raise ValueError(
                f"workers + spare_workers = {self.workers + self.spare_workers}: a citus "
                f"cluster has at most {MAX_WORKERS} workers, spare ones included")
        return self
