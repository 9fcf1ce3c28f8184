"""The ``etcd`` kind's spec: a cluster of ``members`` on loopback."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator, model_validator

from .._base import Scalar, ServiceSpec, Starter, seconds


class EtcdSpec(ServiceSpec):
    """An etcd cluster (``kind = "etcd"``) of ``members`` processes on loopback, with fast
    heartbeat and election settings unless told otherwise."""

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url", "endpoints")
    kind: Literal["etcd"] = "etcd"
    starter: ClassVar[Starter | None] = Starter(
        name="kv", imports=("httpx",),
        check='health = httpx.get(shakedown_env["{name}"].url + "/health", timeout=5).json()\n'
              'assert health["health"] == "true", health')
    members: int = 1
    bin_dir: str | None = None
    heartbeat_interval: float = Field(default=0.01, gt=0)
    election_timeout: float = Field(default=0.1, gt=0)
    settings: dict[str, Scalar] = {}

    @field_validator("heartbeat_interval", "election_timeout", mode="before")
    @classmethod
    def _timeouts_seconds(cls, value: Any) -> Any:
        return seconds(value)

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
