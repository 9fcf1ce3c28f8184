"""The ``external`` kind: a service shakedown does not start (staging, a shared database),
known only by its URL. Ready when it answers at protocol level: an HTTP status for http(s)
URLs, ``SELECT 1`` for postgresql URLs, PING for redis URLs, a TCP connect otherwise.

It has no processes, so it is neither ``Killable`` nor ``Pausable``: process faults against it
are refused by the faults layer. Network faults through a link still apply."""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit

import httpx

from ...errors import ServiceStartError, TopologyError, mask_url
from ...process import NotReady, Probe, wait_ready
from ...topology.specs.external import ExternalSpec
from .._base import Service, ServiceContext

DEFAULT_PORTS = {"http": 80, "https": 443, "postgresql": 5432, "postgres": 5432,
                 "redis": 6379, "rediss": 6379, "mysql": 3306, "amqp": 5672, "mongodb": 27017}
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_variables(text: str, where: str) -> str:
    """Replace ``${VAR}`` with the environment variable; TopologyError if it is not set."""

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise TopologyError(f"{where}: ${{{name}}} is not set in the environment",
                                fix=[f"export {name}=... before starting, or write the URL "
                                     "in the topology"])
        return os.environ[name]

    return _VARIABLE.sub(value, text)


class ExternalService(Service, kind="external"):
    """A service reached by URL. Start and stop do nothing; readiness is checked."""

    port_count: ClassVar[int] = 0
    spec: ExternalSpec

    def __init__(self, spec: ExternalSpec, ctx: ServiceContext) -> None:
        super().__init__(spec, ctx)
        self._url = ""
        self._host = ""
        self._port = 0
        self.scheme = ""
        # A ${VAR} missing here is reported when the service starts, not when an environment
        # is only attached to (status, down), which reads the URL from its state instead.
        self._url_error: TopologyError | None = None
        try:
            self._set_url(expand_variables(spec.url, f"services.{ctx.name}.url"))
        except TopologyError as exc:
            self._url_error = exc

    def _set_url(self, url: str) -> None:
        parts = urlsplit(url)
        if not parts.scheme or not parts.hostname:
            raise TopologyError(f"services.{self.name}.url: {mask_url(url)!r} is not an "
                                "absolute URL once expanded")
        self._url = url
        self.scheme = parts.scheme.split("+", 1)[0].lower()
        self._host = parts.hostname
        self._port = parts.port or DEFAULT_PORTS.get(self.scheme, 0)
        self._url_error = None

    def _require_url(self) -> None:
        if self._url_error is not None:
            raise self._url_error

    @property
    def host(self) -> str:
        self._require_url()
        return self._host

    @property
    def port(self) -> int:
        self._require_url()
        return self._port

    @property
    def url(self) -> str:
        self._require_url()
        return self._url

    @property
    def pids(self) -> list[int]:
        return []

    def start(self) -> None:
        """Nothing to start: the service runs elsewhere (the URL is checked)."""
        self._require_url()

    def stop(self) -> None:
        """Nothing to stop."""

    def status(self) -> str:
        return "external"

    def _strategy(self) -> str:
        if self.spec.ready is not None:
            return self.spec.ready.strategy
        if self.scheme in ("http", "https"):
            return "http"
        if self.scheme in ("postgresql", "postgres"):
            return "sql"
        if self.scheme in ("redis", "rediss"):
            return "ping"
        return "tcp"

    def probe(self) -> tuple[Probe, str]:
        """The readiness probe and a description of it (passwords masked)."""
        strategy = self._strategy()
        ready = self.spec.ready
        if strategy == "http":
            path = ready.http if ready is not None and ready.http else ""
            status = ready.status if ready is not None else None
            url = self._url.rstrip("/") + path if path else self._url
            return _http_probe(url, status), (
                f"GET {mask_url(url)} answers " + (str(status) if status else "(any status "
                                                   "below 500)"))
        if strategy == "sql":
            query = ready.sql if ready is not None and ready.sql else "SELECT 1"
            return _sql_probe(self._url, query), f"{query} on {mask_url(self._url)}"
        if strategy == "ping":
            return _redis_probe(self._url), f"PING on {mask_url(self._url)}"
        if strategy == "none":
            return (lambda: True), "none (ready = none)"
        if not self._port:
            raise TopologyError(f"services.{self.name}.url: no port in {mask_url(self._url)!r} "
                                f"and no default port for {self.scheme}://",
                                fix=["put the port in the URL"])
        return _tcp_probe(self._host, self._port), f"TCP connect to {self._host}:{self._port}"

    def wait_ready(self) -> None:
        probe, check = self.probe()
        try:
            self.ready_seconds = wait_ready(probe, service=self.name, check=check,
                                            timeout=self.spec.ready_timeout, interval=0.01,
                                            max_interval=0.25)
        except ServiceStartError as exc:
            raise ServiceStartError(
                f"external service {self.name!r} at {mask_url(self._url)} is not reachable "
                f"after {self.spec.ready_timeout:.1f}s",
                checked=exc.checked,
                fix=["check that the URL is right and the service is up",
                     "from here: curl / psql / nc against the same address",
                     "set ready = \"none\" to skip the check, or raise ready_timeout"],
            ) from None

    def extra_state(self) -> dict[str, Any]:
        return {"url": self._url}  # the state file also holds the generated passwords

    def restore_state(self, state: Mapping[str, Any]) -> None:
        super().restore_state(state)
        if state.get("url"):
            self._set_url(str(state["url"]))


def _http_probe(url: str, status: int | None) -> Probe:
    def probe() -> bool:
        with httpx.Client(timeout=2.0, trust_env=False, follow_redirects=False) as client:
            response = client.get(url)
        if status is not None and response.status_code != status:
            raise NotReady(f"GET {mask_url(url)} -> {response.status_code}, expected {status}")
        if status is None and response.status_code >= 500:
            raise NotReady(f"GET {mask_url(url)} -> {response.status_code}")
        return True

    return probe


def _sql_probe(url: str, query: str) -> Probe:
    def probe() -> bool:
        import psycopg

        try:
            with psycopg.connect(_libpq_url(url), connect_timeout=2, autocommit=True) as conn:
                conn.execute(query).fetchall()
        except psycopg.Error as exc:
            raise NotReady(mask_url(f"{type(exc).__name__}: {exc}".strip())) from None
        return True

    return probe


def _libpq_url(url: str) -> str:
    # postgresql+psycopg://... (SQLAlchemy style) is not a libpq URL.
    scheme, rest = url.split("://", 1)
    return f"postgresql://{rest}" if scheme != "postgresql" else url


def _redis_probe(url: str) -> Probe:
    def probe() -> bool:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            return bool(client.ping())
        except redis.RedisError as exc:
            raise NotReady(mask_url(f"{type(exc).__name__}: {exc}")) from None
        finally:
            client.close()

    return probe


def _tcp_probe(host: str, port: int) -> Probe:
    def probe() -> bool:
        with socket.create_connection((host, port), timeout=2):
            return True

    return probe
