"""The ``router`` kind's spec: an HTTP (and WebSocket) router, as a cloud load balancer routes,
by path prefix and optional host, to services of the topology or to the tasks of an ECS
service that a peer runs (``RoutesTasks``).

```toml
[services.lb]
kind = "router"

[[services.lb.routes]]
prefix = "/api"
service = "api"            # a service of the topology (its host and port)
health = "/health"         # HTTP check (a TCP check without it)

[[services.lb.routes]]
prefix = "/session/{id}"   # one segment is a placeholder...
strip_prefix = true
tasks = { from = "aws", cluster = "default", service = "session-{id}", container_port = 8080 }
```

A prefix matches itself and what follows a ``/`` after it (``/api`` matches ``/api`` and
``/api/x``, not ``/apix``); the longest prefix wins; two routes with the same prefix and host
overlap (an error)."""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from .._base import ServiceSpec, Spec, seconds

_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@-]+$")
_PLACEHOLDER = re.compile(r"^\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_HOST = re.compile(r"^[A-Za-z0-9*]([A-Za-z0-9.-]*[A-Za-z0-9])?(:\d{1,5})?$")


def prefix_segments(prefix: str) -> list[str]:
    """The segments of a valid prefix (``/`` has none)."""
    return [part for part in prefix.split("/") if part]


def placeholder(prefix: str) -> tuple[int, str] | None:
    """(segment index, name) of the prefix's placeholder, if it has one."""
    for index, part in enumerate(prefix_segments(prefix)):
        found = _PLACEHOLDER.match(part)
        if found:
            return index, found.group(1)
    return None


def _check_prefix(value: str) -> str:
    if not value.startswith("/"):
        raise ValueError(f"prefix {value!r} must start with '/' (e.g. \"/api\")")
    if "//" in value:
        raise ValueError(f"prefix {value!r} has an empty segment ('//')")
    parts = prefix_segments(value)
    bad = [p for p in parts if not _SEGMENT.match(p) and not _PLACEHOLDER.match(p)]
    if bad:
        raise ValueError(f"prefix {value!r}: segment {bad[0]!r} is neither a path segment "
                         "(letters, digits, - . _ ~ and the like: no spaces, '?', '#', '%') "
                         "nor one placeholder such as {id}")
    if sum(1 for p in parts if _PLACEHOLDER.match(p)) > 1:
        raise ValueError(f"prefix {value!r} has more than one placeholder")
    return "/" + "/".join(parts)  # "/api/" is "/api"


class TaskTargets(Spec):
    """The running tasks of an ECS service, asked of the service ``from`` (a ``RoutesTasks``
    peer such as the ``aws`` kind): by cluster and ECS service name, which may hold the route
    prefix's placeholder (``session-{id}``: one ECS service per session)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    provider: str = Field(alias="from")
    cluster: str = "default"
    service: str = Field(min_length=1)
    container_port: int | None = Field(default=None, ge=1, le=65535)

    @property
    def template(self) -> str | None:
        """The placeholder the ECS service name holds (``id`` in ``session-{id}``), if any."""
        found = re.search(r"\{([A-Za-z_][A-Za-z0-9_]*)\}", self.service)
        return found.group(1) if found else None


class RouteSpec(Spec):
    """One route: a prefix (and host) to a topology service or to tasks."""

    prefix: str
    host: str | None = None
    service: str | None = None
    tasks: TaskTargets | None = None
    strip_prefix: bool = False
    health: str | None = None
    """The path of an HTTP health check (``GET``, 2xx/3xx is healthy); a TCP check without."""

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        return _check_prefix(value)

    @field_validator("host")
    @classmethod
    def _host(cls, value: str | None) -> str | None:
        if value is not None and not _HOST.match(value):
            raise ValueError(f"host {value!r} is not a host name (e.g. \"app.example.com\")")
        return value.lower() if value else value

    @field_validator("health")
    @classmethod
    def _health(cls, value: str | None) -> str | None:
        if value is not None and (not value.startswith("/") or " " in value):
            raise ValueError(f"health {value!r} must be a path starting with '/'")
        return value

    @model_validator(mode="after")
    def _one_target(self) -> RouteSpec:
        if (self.service is None) == (self.tasks is None):
            raise ValueError("give exactly one target: service = \"NAME\" (a service of the "
                             "topology) or tasks = { from = \"aws\", service = \"ECS-SERVICE\" }")
        slot = placeholder(self.prefix)
        template = self.tasks.template if self.tasks is not None else None
        if slot is not None and template != slot[1]:
            raise ValueError(f"prefix {self.prefix!r} has the placeholder {{{slot[1]}}}: "
                             f"route it to tasks whose service name holds {{{slot[1]}}} "
                             "(e.g. tasks = { service = \"session-{" + slot[1] + "}\" })")
        if slot is None and template is not None and self.tasks is not None:
            raise ValueError(f"tasks.service {self.tasks.service!r} holds {{{template}}} "
                             f"but prefix {self.prefix!r} has no such placeholder")
        return self

    @property
    def match_key(self) -> tuple[str, str]:
        """What two routes may not share: the prefix (placeholders alike) and the host."""
        return re.sub(r"\{[^}]*\}", "{}", self.prefix), self.host or ""


class RouterSpec(ServiceSpec):
    """An HTTP router (``kind = "router"``), HAProxy in HTTP mode."""

    exports: ClassVar[tuple[str, ...]] = ("host", "port", "url")
    kind: Literal["router"] = "router"
    parts_named_after_service: ClassVar[bool] = True
    routes: tuple[RouteSpec, ...] = Field(min_length=1)
    check_interval: float = Field(default=0.1, gt=0)
    poll_interval: float = Field(default=0.15, gt=0)
    """How often the tasks of task routes are asked again."""
    timeout: float = Field(default=30.0, gt=0)
    """Connect and idle time allowed to a request (a WebSocket's tunnel stays one hour)."""
    links: bool = True
    """Send each routed service's traffic through a link of the router's own (faults reach
    it); ``false`` sends it straight to the service (no fault proxy in the path)."""
    bin_dir: str | None = None

    @field_validator("check_interval", "poll_interval", "timeout", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> Any:
        return seconds(value)

    @field_validator("routes")
    @classmethod
    def _no_overlap(cls, routes: tuple[RouteSpec, ...]) -> tuple[RouteSpec, ...]:
        seen: dict[tuple[str, str], int] = {}
        for index, route in enumerate(routes):
            other = seen.setdefault(route.match_key, index)
            if other != index:
                on = f" on host {route.host!r}" if route.host else ""
                raise ValueError(f"routes {other} and {index} overlap: both route prefix "
                                 f"{route.prefix!r}{on}; give each prefix (and host) once")
        return routes

    def service_refs(self) -> dict[str, tuple[str, tuple[str, ...]]]:
        refs: dict[str, tuple[str, tuple[str, ...]]] = {}
        for index, route in enumerate(self.routes):
            if route.service is not None:
                refs[f"routes.{index}.service"] = (route.service, ())
            if route.tasks is not None:
                refs[f"routes.{index}.tasks.from"] = (route.tasks.provider, ())
        return refs


__all__ = ["RouteSpec", "RouterSpec", "TaskTargets", "placeholder", "prefix_segments"]
