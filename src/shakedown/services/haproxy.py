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
import subprocess
from typing import Any, ClassVar

import httpx
import psycopg

from ..errors import MissingBinaryError
from ..process import NotReady, spawn, wait_ready
from ..topology.specs.haproxy import HAProxySpec
from ._base import LOOPBACK, InternalLink, ProcessService, find_binary
from .patroni import SUPERUSER, Member, PatroniService

INSTALL_HINT = "apt-get install -y haproxy"


def find_haproxy(bin_dir: str | None) -> str:
    return find_binary("haproxy", kind="haproxy", bin_dir=bin_dir, system_dirs="/usr/sbin:/sbin",
                       install=INSTALL_HINT)


class HAProxyService(ProcessService):
    kind: ClassVar[str] = "haproxy"
    port_count: ClassVar[int] = 3
    stop_signal: ClassVar[int] = signal.SIGTERM  # hard stop: SIGUSR1 would wait for sessions
    spec: HAProxySpec

    def __init__(self, spec: HAProxySpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self._binary: str | None = None

    @property
    def binary(self) -> str:
        if self._binary is None:
            self._binary = find_haproxy(self.spec.bin_dir)
        return self._binary

    @property
    def backend(self) -> PatroniService:
        peer = self.ctx.peer(self.spec.backend)
        assert isinstance(peer, PatroniService)
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
        return (f"postgresql://{SUPERUSER}:{backend.password}@{self.host}:{port}/"
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

    def version(self) -> str:
        out = subprocess.run([self.binary, "-v"], capture_output=True, text=True,
                             check=False).stdout.split()
        return f"HAProxy {out[2] if len(out) > 2 else '?'}"

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

    def _link_names(self, member: Member) -> tuple[str, str]:
        """The names of HAProxy's links to a member: (sessions, health checks)."""
        return f"{self.name}-{member.name}", f"{self.name}-{member.name}-api"

    def _member_address(self, member: Member) -> tuple[str, int]:
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
        self.binary  # noqa: B018 - a missing binary fails before anything starts
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(self._config())
        if self.ctx.run_as:
            self.ctx.run_as.chown(self.ctx.data_dir)
            self.ctx.run_as.chown(self.config_path)

    def start(self) -> None:
        self.processes = [spawn([self.binary, "-db", "-f", str(self.config_path)],
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
        with psycopg.connect(host=self.host, port=self.primary_port, user=SUPERUSER,
                             password=backend.password, dbname="postgres",
                             connect_timeout=2, autocommit=True) as conn:
            row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        if not row or row[0]:
            raise NotReady("the primary port reached a server in recovery")
        return True

    def wait_ready(self) -> None:
        check = (f"HAProxy routes its primary port {self.primary_port} to the Patroni leader "
                 f"only, and SELECT pg_is_in_recovery() through it is false")
        self.ready_seconds = wait_ready(self._probe, service=self.name, check=check,
                                        timeout=self.spec.ready_timeout, watch=self.processes,
                                        interval=0.01, max_interval=0.05)


def doctor_check() -> tuple[str, bool, str, str]:
    """For ``shakedown doctor``: (component, ok, detail, install command)."""
    try:
        binary = find_haproxy(None)
    except MissingBinaryError as exc:
        return ("haproxy", False, exc.what, INSTALL_HINT)
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=False)
    lines = out.stdout.strip().splitlines()
    return ("haproxy", True, f"{binary}: {lines[0] if lines else '?'}", "")
