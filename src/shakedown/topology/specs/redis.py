"""The ``redis`` kind's spec."""

from __future__ import annotations

from typing import ClassVar, Literal

from .._base import Scalar, ServiceSpec


class RedisSpec(ServiceSpec):
    """A Redis server (``kind = "redis"``); persistence is off unless asked for."""

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url", "password")
    kind: Literal["redis"] = "redis"
    bin_dir: str | None = None
    persistence: bool = False
    password: bool = True
    settings: dict[str, Scalar] = {}
