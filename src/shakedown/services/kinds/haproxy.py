"""The ``haproxy`` kind: Debian's HAProxy in front of a ``postgres-ha`` service, configured as
production Patroni setups are: a primary port whose servers are checked with Patroni's
``GET /primary`` and a replicas port checked with ``GET /replica`` (``http-check expect status
200`` on each member's REST port), checks every ``check_interval`` (100 ms), sessions to a server
marked down are shut down. A third port serves HAProxy's statistics (CSV), which readiness
reads: HAProxy starts with every server up until checks say otherwise, so "ready" means its
view agrees with Patroni's (the leader alone up on the primary port) and ``SELECT
pg_is_in_recovery()`` through the primary port answers false.

Ports: ``ctx.ports`` = [primary, replicas, stats]."""

from __future__ import annotations

import csv
import io
import signal
from typing import Any, ClassVar

import httpx
import psycopg

from ...errors import ServiceStartError
from ...process import NotReady, spawn
from ...topology.specs.haproxy import HAProxySpec
from .._base import LOOPBACK, Binary, InternalLink, ServerService
from .._protocols import ClusterMember, HasMembers


class HAProxyService(ServerService, kind="haproxy"):
    binary: ClassVar[Binary] = Binary("haproxy", "apt-get install -y haproxy",
                                      system_dirs="/usr/sbin:/sbin", version_args=("-v",),
                                      version_pattern=r"version (\S+)")
    product: ClassVar[str] = "HAProxy"
    port_count: ClassVar[int] = 3
    stop_signal: ClassVar[int] = signal.SIGTERM  # hard stop: SIGUSR1 would wait for sessions
    spec: HAProxySpec

    @property
    def backend(self) -> HasMembers:
        """The cluster in front of which HAProxy runs (any kind with members and a leader)."""
        peer = self.ctx.peer(self.spec.backend)
        if not isinstance(peer, HasMembers):
            raise ServiceStartError(
                f"service {self.name!r}: backend {self.spec.backend!r} ({peer.kind}) has no "
                "cluster members to route to",
                fix=["name a postgres-ha service as backend"])
        return peer

    # -- addresses ---------------------------------------------------------------------------
    @property
    def primary_port(self) -> int:
        return self.ctx.ports[0]

    @property
    def replica_port(self) -> int:
        return self.ctx.ports[1]

    @property
    def stats_port(self) -> int:
        return self.ctx.ports[2]

    def _url(self, port: int) -> str:
        backend = self.backend
        return (f"postgresql://{backend.user}:{backend.password}@{self.host}:{port}/"
                f"{backend.database}")

    @property
    def url(self) -> str:
        return self.primary_url

    @property
    def primary_url(self) -> str:
        return self._url(self.primary_port)

    @property
    def replica_url(self) -> str:
        return self._url(self.replica_port)

    def exports(self) -> dict[str, str]:
        return {"host": self.host, "port": str(self.primary_port), "url": self.primary_url,
                "primary_url": self.primary_url, "replica_url": self.replica_url,
                "primary_port": str(self.primary_port),
                "replica_port": str(self.replica_port)}

    # -- links -------------------------------------------------------------------------------
    def internal_links(self) -> list[InternalLink]:
        """HAProxy reaches each member through two links of its own: ``lb-db0`` (client
        sessions to its postgres) and ``lb-db0-api`` (the health checks on its Patroni REST
        API), so ``faults.partition(["db0"], ["lb"])`` cuts the member off from HAProxy the
        way a network would: sessions stall and the checks fail, so HAProxy marks it down."""
        links = []
        for member in self.backend.members:
            sessions, checks = self._link_names(member)
            links += [
                InternalLink(name=sessions, source=self.name, to=member.name,
                             upstream=(member.host, member.port)),
                InternalLink(name=checks, source=self.name, to=member.name,
                             upstream=(member.host, member.rest_port)),
            ]
        return links

    def _link_names(self, member: ClusterMember) -> tuple[str, str]:
        """The names of HAProxy's links to a member: (sessions, health checks)."""
        return f"{self.name}-{member.name}", f"{self.name}-{member.name}-api"

    def _member_address(self, member: ClusterMember) -> tuple[str, int]:
        """Where HAProxy sends a member's sessions (host:port) and its checks (port): the
        member's links when the environment runs a proxy, its own ports otherwise."""
        sessions, checks = self._link_names(member)
        data, check = self.ctx.link_port(sessions), self.ctx.link_port(checks)
        return (f"{LOOPBACK}:{data}" if data is not None else f"{member.host}:{member.port}",
                check if check is not None else member.rest_port)

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def config_path(self) -> Any:
        return self.ctx.data_dir / "haproxy.cfg"

    def _config(self) -> str:
        inter = f"{max(1, round(self.spec.check_interval * 1000))}ms"
        lines = [
            "global",
            "    maxconn 1000",
            "    nbthread 1",
            "defaults",
            "    mode tcp",
            "    timeout connect 1s",
            "    timeout client 30m",
            "    timeout server 30m",
            "    timeout check 1s",
            f"    default-server inter {inter} fastinter {inter} downinter {inter} "
            "rise 1 fall 2 on-marked-down shutdown-sessions",
        ]
        for section, port, check, balance in (
            ("primary", self.primary_port, "/primary", "first"),
            ("replicas", self.replica_port, "/replica", "roundrobin"),
        ):
            lines += [
                f"listen {section}",
                f"    bind {self.host}:{port}",
                f"    balance {balance}",
                "    option httpchk",
                f"    http-check send meth GET uri {check}",
                "    http-check expect status 200",
            ]
            for member in self.backend.members:
                data, check_port = self._member_address(member)
                lines.append(f"    server {member.name} {data} "
                             f"check addr {LOOPBACK} port {check_port}")
        lines += [
            "listen stats",
            "    mode http",
            f"    bind {self.host}:{self.stats_port}",
            "    stats enable",
            "    stats uri /",
        ]
        return "\n".join(lines) + "\n"

    def prepare(self) -> None:
        self.binary_path  # noqa: B018 - a missing binary fails before anything starts
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config())
        if self.ctx.run_as:
            self.ctx.run_as.chown(self.ctx.data_dir)
            self.ctx.run_as.chown(self.config_path)

    def start(self) -> None:
        self.processes = [spawn([self.binary_path, "-db", "-f", str(self.config_path)],
                                role="haproxy", log_path=self.log_path,
                                env_id=self.ctx.env_id, run_as=self.ctx.run_as)]

    def server_states(self) -> dict[str, dict[str, str]]:
        """HAProxy's own view: ``{"primary": {"db0": "UP", ...}, "replicas": {...}}``."""
        response = httpx.get(f"http://{self.host}:{self.stats_port}/;csv", timeout=1.0,
                             trust_env=False)
        response.raise_for_status()
        states: dict[str, dict[str, str]] = {"primary": {}, "replicas": {}}
        for row in csv.DictReader(io.StringIO(response.text.lstrip("# "))):
            section, server = row.get("pxname", ""), row.get("svname", "")
            if section in states and server not in ("FRONTEND", "BACKEND"):
                states[section][server] = row.get("status", "")
        return states

    def routed_primary(self) -> list[str]:
        """Servers HAProxy sends primary-port traffic to (UP on the primary port)."""
        return [name for name, state in self.server_states()["primary"].items()
                if state.startswith("UP")]

    def _probe(self) -> bool:
        backend = self.backend
        leader = backend.leader()
        if leader is None:
            raise NotReady("the backend has no leader")
        routed = self.routed_primary()
        if routed != [leader.name]:
            raise NotReady(f"primary port routes to {routed or 'nothing'}, "
                           f"the leader is {leader.name}")
        expected = {m.name for m in backend.replicas()}
        up = {name for name, state in self.server_states()["replicas"].items()
              if state.startswith("UP")}
        if up != expected:
            raise NotReady(f"replicas port routes to {sorted(up)}, replicas: {sorted(expected)}")
        with psycopg.connect(host=self.host, port=self.primary_port, user=backend.user,
                             password=backend.password, dbname="postgres",
                             connect_timeout=2, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if not row or row[0]:
            raise NotReady("the primary port reached a server in recovery")
        return True

    def wait_ready(self) -> None:
        check = (f"HAProxy routes its primary port {self.primary_port} to the Patroni leader "
                 f"only, and SELECT pg_is_in_recovery() through it is false")
        self.await_ready(self._probe, check, interval=0.01, max_interval=0.05)
