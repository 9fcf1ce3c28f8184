"""The ``etcd`` kind: Debian's etcd, one process per member (roles ``etcd0``, ``etcd1``, ...,
so that faults can target one), listening on loopback only, with fast heartbeat and election
settings (heartbeat 10 ms, election 100 ms: healthy in tens of milliseconds instead of about
half a second). Ready when every member's ``GET /health`` says ``{"health": "true"}`` and its
``GET /version`` has a decided cluster version (not ``not_decided``).

Ports: ``ctx.ports[i]`` is member i's client port, ``ctx.ports[members + i]`` its peer port."""

from __future__ import annotations

import base64
import re
from typing import Any, ClassVar

import httpx

from ...process import NotReady, Spawned, spawn
from ...topology import ServiceSpec
from ...topology.specs.etcd import EtcdSpec
from .._base import Binary, ServerService


class EtcdService(ServerService, kind="etcd"):
    binary: ClassVar[Binary] = Binary("etcd", "apt-get install -y etcd-server",
                                      version_pattern=r"etcd Version: (\S+)")
    spec: EtcdSpec

    @classmethod
    def ports_for(cls, spec: ServiceSpec) -> int:
        assert isinstance(spec, EtcdSpec)
        return 2 * spec.members

    def __init__(self, spec: EtcdSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._http: httpx.Client | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def members(self) -> int:
        return self.spec.members

    def member_name(self, index: int) -> str:
        return f"etcd{index}"

    def client_port(self, index: int) -> int:
        return self.ctx.ports[index]

    def peer_port(self, index: int) -> int:
        return self.ctx.ports[self.members + index]

    def client_url(self, index: int) -> str:
        return f"http://{self.host}:{self.client_port(index)}"

    def peer_url(self, index: int) -> str:
        return f"http://{self.host}:{self.peer_port(index)}"

    @property
    def client_urls(self) -> list[str]:
        return [self.client_url(i) for i in range(self.members)]

    @property
    def url(self) -> str:
        return ",".join(self.client_urls)

    @property
    def endpoints(self) -> str:
        """``host:port`` of every member, comma-separated (etcdctl, Patroni's ``hosts``)."""
        return ",".join(f"{self.host}:{self.client_port(i)}" for i in range(self.members))

    def exports(self) -> dict[str, str]:
        return {**super().exports(), "endpoints": self.endpoints}

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> None:
        self.binary_path  # noqa: B018 - a missing binary fails before anything starts
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ctx.run_as:
            self.ctx.run_as.chown(self.ctx.data_dir)

    def _arguments(self, index: int) -> list[str]:
        cluster = ",".join(f"{self.member_name(i)}={self.peer_url(i)}"
                           for i in range(self.members))
        args = {
            "name": self.member_name(index),
            "data-dir": str(self.ctx.data_dir / self.member_name(index)),
            "listen-client-urls": self.client_url(index),
            "advertise-client-urls": self.client_url(index),
            "listen-peer-urls": self.peer_url(index),
            "initial-advertise-peer-urls": self.peer_url(index),
            "initial-cluster": cluster,
            "initial-cluster-token": f"{self.ctx.env_id}-{self.name}",
            "initial-cluster-state": "new",
            "heartbeat-interval": str(round(self.spec.heartbeat_interval * 1000)),
            "election-timeout": str(round(self.spec.election_timeout * 1000)),
            "logger": "zap",
            "log-level": "warn",
        }
        args.update({key: _flag(value) for key, value in self.spec.settings.items()})
        return [f"--{key}={value}" for key, value in args.items()]

    def _spawn_member(self, index: int) -> Spawned:
        return spawn([self.binary_path, *self._arguments(index)], role=self.member_name(index),
                     log_path=self.log_path, env_id=self.ctx.env_id, run_as=self.ctx.run_as)

    def start(self) -> None:
        self.processes = [self._spawn_member(i) for i in range(self.members)]

    def start_member(self, role: str) -> None:
        """Start one member (``etcd0``) again after a kill; the others keep running."""
        index = next((i for i in range(self.members) if self.member_name(i) == role), None)
        if index is None:
            self._select(role)  # raises the error that lists the roles
            return
        with self._lock:
            if any(p.alive() for p in self.processes if p.role == role):
                return
            others = [p for p in self.processes if p.role != role]
            self.processes = [*others, self._spawn_member(index)]

    def start_again(self) -> None:
        """Start the members that are not running (all after a stop, one after a kill of
        one) and wait until every member is healthy."""
        with self._lock:
            alive = {p.role for p in self.processes if p.alive()}
            for index in range(self.members):
                if self.member_name(index) not in alive:
                    self.start_member(self.member_name(index))
        self.wait_ready()

    def healthy(self, index: int) -> bool:
        """``GET /health`` of member ``index`` says ``{"health": "true"}`` and ``GET /version``
        has a decided cluster version."""
        if self._http is None:
            self._http = httpx.Client(timeout=1.0, trust_env=False)
        response = self._http.get(f"{self.client_url(index)}/health")
        body = response.json() if response.content else {}
        if response.status_code != 200 or body.get("health") != "true":
            raise NotReady(f"GET {self.client_url(index)}/health -> {response.status_code} "
                           f"{response.text.strip()[:200]}")
        # Healthy comes a moment before the cluster version is decided; clients that read it
        # at start (Patroni's etcd3 client parses it as numbers) fail on "not_decided".
        version = self._http.get(f"{self.client_url(index)}/version")
        cluster = (version.json() if version.status_code == 200 else {}).get("etcdcluster", "")
        if not re.fullmatch(r"\d+(\.\d+)+", str(cluster)):
            raise NotReady(f"GET {self.client_url(index)}/version -> etcdcluster {cluster!r}")
        return True

    def wait_ready(self) -> None:
        def probe() -> bool:
            return all(self.healthy(i) for i in range(self.members))

        check = (f'GET /health says {{"health":"true"}} and /version a cluster version '
                 f"on {self.url}")
        try:
            self.await_ready(probe, check, interval=0.002, max_interval=0.02)
        finally:
            self._close_http()

    def _close_http(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    def client(self, timeout: float = 2.0) -> EtcdClient:
        """A small client of etcd's v3 JSON gateway (put, get, delete) on the first member."""
        return EtcdClient(self.client_urls, timeout)


class EtcdClient:
    """Keys and values through etcd's v3 HTTP/JSON gateway (``/v3/kv/...``): enough for tests
    to write and read keys without a gRPC dependency."""

    def __init__(self, urls: list[str], timeout: float = 2.0) -> None:
        self.urls = urls
        self._http = httpx.Client(timeout=timeout, trust_env=False)

    def __enter__(self) -> EtcdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        last: Exception | None = None
        for url in self.urls:
            try:
                response = self._http.post(f"{url}/v3/{path}", json=body)
                response.raise_for_status()
                result: dict[str, Any] = response.json()
                return result
            except httpx.HTTPError as exc:
                last = exc
        assert last is not None
        raise last

    def put(self, key: str, value: str) -> None:
        self._call("kv/put", {"key": _b64(key), "value": _b64(value)})

    def get(self, key: str) -> str | None:
        kvs = self._call("kv/range", {"key": _b64(key)}).get("kvs", [])
        return _unb64(kvs[0]["value"]) if kvs else None

    def delete(self, key: str) -> None:
        self._call("kv/deleterange", {"key": _b64(key)})


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _unb64(text: str) -> str:
    return base64.b64decode(text).decode()


def _flag(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


