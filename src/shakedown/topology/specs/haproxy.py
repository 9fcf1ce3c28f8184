"""The ``haproxy`` kind's spec: HAProxy in front of a ``postgres-ha`` service."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from .._base import ServiceSpec, seconds


class HAProxySpec(ServiceSpec):
    """HAProxy (``kind = "haproxy"``) in front of a ``postgres-ha`` service: one port routes
    to the primary, another to the replicas, chosen by Patroni's REST health checks."""

    exports: ClassVar[tuple[str, ...]] = (
        "host", "port", "url", "primary_url", "replica_url", "primary_port", "replica_port",
    )
    service_fields: ClassVar[dict[str, tuple[str, ...]]] = {"backend": ("postgres-ha",)}
    fronts: ClassVar[str | None] = "backend"
    kind: Literal["haproxy"] = "haproxy"
    parts_named_after_service: ClassVar[bool] = True
    backend: str
    check_interval: float = Field(default=0.1, gt=0)
    bin_dir: str | None = None

    @field_validator("check_interval", mode="before")
    @classmethod
    def _interval_seconds(cls, value: Any) -> Any:
        return seconds(value)
