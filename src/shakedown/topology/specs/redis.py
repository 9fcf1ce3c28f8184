"""The ``redis`` kind's spec."""

from __future__ import annotations

from typing import ClassVar, Literal

from .._base import Scalar, ServiceSpec, Starter


class RedisSpec(ServiceSpec):
    """A Redis server (``kind = "redis"``); persistence is off unless asked for."""

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url", "password")
    kind: Literal["redis"] = "redis"
    starter: ClassVar[Starter | None] = Starter(
        name="cache", imports=("redis",),
        check='client = redis.Redis.from_url(shakedown_env["{name}"].url)\n'
              'assert client.set("starter", "ok") and client.get("starter") == b"ok"')
    bin_dir: str | None = None
    persistence: bool = False
    password: bool = True
    settings: dict[str, Scalar] = {}
