"""The ``router`` kind: HAProxy in HTTP mode, routing by path prefix (and host) as a cloud load
balancer does, WebSocket upgrades included (HAProxy tunnels them), ``503`` while a route has no
healthy target (HAProxy's own answer when a backend has no server up), ``404`` for a path that
no route matches.

Targets:
- a service of the topology: one server, its address through the router's own link to it
  (``ROUTER-SERVICE``, so ``faults.partition``/``latency`` reach the upstream traffic and its
  health checks; a declared ``[links]`` entry from the router is used instead when there is one);
- the tasks of an ECS service asked of a ``RoutesTasks`` peer: a backend without servers whose
  servers a follower thread keeps in step with the peer's answer every ``poll_interval``, through
  HAProxy's runtime API (``add server`` / ``enable server`` / ``del server``: no reload, so no
  connection is dropped and the change takes one round trip, ~1 ms);
- per-session tasks (``/session/{id}`` to ECS service ``session-{id}``): HAProxy cannot add a
  backend at runtime (2.6), so the route's backend looks the session id up in a map that the
  follower fills (``add map`` / ``del map``) and sends the request there with ``set-dst`` /
  ``set-dst-port`` to a server at 0.0.0.0:0. The ids to ask about are the ones clients use:
  HAProxy records each requested id in a stick table (idle ids expire after 10 minutes) that the
  follower reads (``show table``), so nothing in the system under test is there for the router:
  it creates its ECS service per session as it would on AWS, and until a task of it runs the
  route answers 503, as an ALB without a healthy target does.

The follower runs in the process that owns the environment (a test run, a foreground
``shakedown up``); in an environment left detached task routes keep their last servers.

Ports: ``ctx.ports`` = [http, runtime API]."""

from __future__ import annotations

import csv
import io
import re
import signal
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from ...errors import ServiceStartError
from ...process import NotReady, spawn
from ...topology import ServiceSpec
from ...topology.specs.router import RouterSpec, RouteSpec, placeholder, prefix_segments
from .._base import LOOPBACK, Binary, InternalLink, ServerService, ServiceContext
from .._protocols import RoutesTasks, TaskTarget

_SAFE_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")


class RuntimeApi:
    """HAProxy's runtime API on a TCP socket: one command a connection."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)

    def __call__(self, command: str) -> str:
        with socket.create_connection(self.address, timeout=2.0) as conn:
            conn.sendall(command.encode() + b"\n")
            chunks = []
            while chunk := conn.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks).decode(errors="replace")

    def stat(self) -> list[dict[str, str]]:
        return list(csv.DictReader(io.StringIO(self("show stat").lstrip("# "))))


@dataclass(frozen=True)
class _Backend:
    """A route as HAProxy sees it: its backend name and the route."""

    name: str
    route: RouteSpec


class RouterService(ServerService, kind="router"):
    binary: ClassVar[Binary] = Binary("haproxy", "apt-get install -y haproxy",
                                      system_dirs="/usr/sbin:/sbin", version_args=("-v",),
                                      version_pattern=r"version (\S+)")
    product: ClassVar[str] = "HAProxy"
    port_count: ClassVar[int] = 2
    stop_signal: ClassVar[int] = signal.SIGTERM
    spec: RouterSpec

    def __init__(self, spec: ServiceSpec, ctx: ServiceContext) -> None:
        super().__init__(spec, ctx)
        self._follower: TaskFollower | None = None

    # -- addresses ---------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def api_port(self) -> int:
        return self.ctx.ports[1]

    @property
    def api(self) -> RuntimeApi:
        return RuntimeApi(self.host, self.api_port)

    @property
    def backends(self) -> list[_Backend]:
        return [_Backend(f"r{index}", route) for index, route in enumerate(self.spec.routes)]

    # -- links -------------------------------------------------------------------------------
    def _declared_link(self, service: str) -> bool:
        return any(link.source == self.name and link.to == service
                   for link in self.ctx.topology.model.links.values())

    def internal_links(self) -> list[InternalLink]:
        """One link to each routed service (unless a declared one exists): its traffic and
        health checks go through the fault proxy."""
        if not self.spec.links:
            return []
        names = dict.fromkeys(r.service for r in self.spec.routes if r.service is not None)
        return [InternalLink(name=f"{self.name}-{name}", source=self.name, to=name)
                for name in names if not self._declared_link(name)]

    def _upstream(self, service: str) -> str:
        port = self.ctx.link_port(f"{self.name}-{service}")
        if port is not None:
            return f"{LOOPBACK}:{port}"
        seen = self.ctx.peer_exports(service)  # through a declared link, if any
        return f"{seen['host']}:{seen['port']}"

    # -- configuration -----------------------------------------------------------------------
    @property
    def config_path(self) -> Path:
        return self.ctx.data_dir / "haproxy.cfg"

    def map_path(self, backend: str) -> Path:
        return self.ctx.data_dir / f"{backend}.map"

    def _config(self) -> str:
        inter = f"{max(1, round(self.spec.check_interval * 1000))}ms"
        timeout = f"{max(1, round(self.spec.timeout * 1000))}ms"
        lines = [
            "global", "    maxconn 2000", "    nbthread 1",
            f"    stats socket ipv4@{self.host}:{self.api_port} level admin",
            "defaults", "    mode http", "    option http-keep-alive",
            f"    timeout connect {timeout}", f"    timeout client {timeout}",
            f"    timeout server {timeout}", "    timeout tunnel 1h",
            "    timeout check 1s", f"    timeout http-request {timeout}",
            f"    default-server inter {inter} fastinter {inter} downinter {inter} "
            "rise 1 fall 2 on-marked-down shutdown-sessions",
            "frontend http", f"    bind {self.host}:{self.port}",
        ]
        ordered = sorted(self.backends, key=lambda b: (b.route.host is None,
                                                        -len(prefix_segments(b.route.prefix))))
        for backend in ordered:
            lines += _frontend_rules(backend)
        lines += ["    default_backend no_route", "backend no_route",
                  '    http-request return status 404 content-type text/plain string '
                  '"no route matches this path"']
        for backend in self.backends:
            lines += self._backend_lines(backend)
        return "\n".join(lines) + "\n"

    def _backend_lines(self, backend: _Backend) -> list[str]:
        route, name = backend.route, backend.name
        lines = [f"backend {name}", "    balance roundrobin"]
        if route.health:
            lines += ["    option httpchk", f"    http-check send meth GET uri {route.health}",
                      "    http-check expect rstatus ^[23]"]
        slot = placeholder(route.prefix)
        if slot is not None:
            lines += self._session_lines(name, slot[0])
        if route.strip_prefix and prefix_segments(route.prefix):
            regex = _prefix_regex(route.prefix)
            lines.append(f"    http-request replace-path ^{regex}/?(.*)$ /\\1")
        if route.service is not None:
            lines.append(f"    server {route.service} {self._upstream(route.service)} check")
        elif slot is not None:
            lines.append("    server task 0.0.0.0:0")
        if slot is not None:
            lines += [f"backend {name}_ids",
                      "    stick-table type string len 128 size 10k expire 10m store "
                      "http_req_cnt"]
        return lines

    def _session_lines(self, name: str, index: int) -> list[str]:
        return [
            f"    http-request set-var(txn.sid) path,field({index + 2},/)",
            f"    http-request track-sc0 var(txn.sid) table {name}_ids",
            f"    http-request set-var(txn.dst) var(txn.sid),map({self.map_path(name)})",
            '    http-request return status 503 content-type text/plain string '
            '"no running task for this session" unless { var(txn.dst) -m found }',
            "    http-request set-dst var(txn.dst),field(1,:)",
            "    http-request set-dst-port var(txn.dst),field(2,:)",
        ]

    # -- lifecycle ---------------------------------------------------------------------------
    def providers(self) -> dict[str, RoutesTasks]:
        """The peers that task routes ask, checked to answer ``task_targets``."""
        found: dict[str, RoutesTasks] = {}
        for route in self.spec.routes:
            if route.tasks is None:
                continue
            peer = self.ctx.peer(route.tasks.provider)
            if not isinstance(peer, RoutesTasks):
                raise ServiceStartError(
                    f"service {self.name!r}: tasks.from = {route.tasks.provider!r} "
                    f"({peer.kind}) does not run ECS tasks",
                    checked=[f"{route.tasks.provider} implements RoutesTasks.task_targets"],
                    fix=["name a service that runs ECS services (kind 'aws' with ECS)"])
            found[route.tasks.provider] = peer
        return found

    def prepare(self) -> None:
        self.binary_path  # noqa: B018 - a missing binary fails before anything starts
        self.providers()
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        for backend in self.backends:
            if placeholder(backend.route.prefix) is not None:
                self.map_path(backend.name).write_text("")
        self.config_path.write_text(self._config())
        if self.ctx.run_as:
            for path in (self.ctx.data_dir, *self.ctx.data_dir.iterdir()):
                self.ctx.run_as.chown(path)

    def start(self) -> None:
        self.processes = [spawn([self.binary_path, "-db", "-f", str(self.config_path)],
                                role="haproxy", log_path=self.log_path,
                                env_id=self.ctx.env_id, run_as=self.ctx.run_as)]

    def server_states(self) -> dict[str, dict[str, str]]:
        """HAProxy's view: ``{"r0": {"api": "UP"}, "r1": {"t-127.0.0.1-4242": "UP"}}``."""
        states: dict[str, dict[str, str]] = {b.name: {} for b in self.backends}
        for row in self.api.stat():
            section, server = row.get("pxname", ""), row.get("svname", "")
            if section in states and server not in ("FRONTEND", "BACKEND"):
                states[section][server] = row.get("status", "")
        return states

    def _probe(self) -> bool:
        states = self.server_states()
        for backend in self.backends:
            if backend.route.service is None:
                continue
            if not any(s.startswith("UP") for s in states[backend.name].values()):
                raise NotReady(f"route {backend.route.prefix} has no server up yet")
        # The HTTP port accepts (a request would reach a user's upstream: not a probe's job).
        socket.create_connection((self.host, self.port), timeout=1.0).close()
        return True

    def wait_ready(self) -> None:
        check = (f"HAProxy answers on {self.url} and the check of every service route "
                 "passes")
        self.await_ready(self._probe, check, interval=0.01, max_interval=0.05)
        self._start_follower()

    def _start_follower(self) -> None:
        tasks = [b for b in self.backends if b.route.tasks is not None]
        if not tasks or (self._follower is not None and self._follower.alive()):
            return
        self._follower = TaskFollower(self.api, tasks, self.providers(),
                                      self.map_path, self.spec.poll_interval)
        self._follower.sync()  # routes follow the tasks from the first request on
        self._follower.start()

    def stop(self) -> None:
        if self._follower is not None:
            self._follower.close()
            self._follower = None
        super().stop()

    def sync_tasks(self) -> None:
        """Bring task routes in step now (the follower does it every ``poll_interval``)."""
        if self._follower is not None:
            self._follower.sync()


class TaskFollower:
    """Keeps the servers of task routes (and the maps of session routes) in step with what
    their providers answer, reading HAProxy's actual state each time, so a restarted HAProxy
    (which starts from its file, without them) is brought back in step too."""

    def __init__(self, api: RuntimeApi, backends: list[_Backend],
                 providers: dict[str, RoutesTasks], map_path: Callable[[str], Path],
                 interval: float) -> None:
        self.api = api
        self.backends = backends
        self.providers = providers
        self.map_path = map_path
        self.interval = interval
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name="shakedown-router-follower")

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive() and not self._stop.is_set()

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.sync()
            except Exception:  # the follower must outlive any one failure
                # HAProxy killed, paused or restarting, or the provider between answers (an
                # emulator restarting): the next round brings the routes in step again.
                continue

    def sync(self) -> None:
        with self._lock:
            for backend in self.backends:
                if placeholder(backend.route.prefix) is None:
                    self._sync_servers(backend)
                else:
                    self._sync_sessions(backend)

    def _targets(self, route: RouteSpec, service: str) -> list[TaskTarget]:
        assert route.tasks is not None
        provider = self.providers[route.tasks.provider]
        return provider.task_targets(route.tasks.cluster, service, route.tasks.container_port)

    def _sync_servers(self, backend: _Backend) -> None:
        assert backend.route.tasks is not None
        wanted = {_server_name(t): t for t in self._targets(backend.route,
                                                             backend.route.tasks.service)}
        have = _servers(self.api(f"show servers state {backend.name}"))
        check = " check" if backend.route.health else ""
        for name in sorted(set(wanted) - have):
            target = wanted[name]
            self._command(f"add server {backend.name}/{name} {target.host}:{target.port}{check}")
            if check:
                self._command(f"enable health {backend.name}/{name}")
            self._command(f"enable server {backend.name}/{name}")
        for name in sorted(have - set(wanted)):
            self._command(f"set server {backend.name}/{name} state maint")
            self._command(f"shutdown sessions server {backend.name}/{name}")
            self._command(f"del server {backend.name}/{name}")

    def _sync_sessions(self, backend: _Backend) -> None:
        assert backend.route.tasks is not None
        template = backend.route.tasks
        ids = re.findall(r"key=(\S+)", self.api(f"show table {backend.name}_ids"))
        wanted: dict[str, str] = {}
        for session in ids:
            if not _SAFE_ID.match(session):
                continue  # not a name an ECS service could have: the route answers 503
            name = template.service.replace(f"{{{template.template}}}", session)
            targets = sorted(self._targets(backend.route, name), key=lambda t: t.task_id)
            if targets:
                wanted[session] = f"{targets[0].host}:{targets[0].port}"
        path = self.map_path(backend.name)
        have = dict(line.split()[1:3] for line in self.api(f"show map {path}").splitlines()
                    if len(line.split()) >= 3)
        for key, value in wanted.items():
            if have.get(key) != value:
                verb = "set" if key in have else "add"
                self._command(f"{verb} map {path} {key} {value}")
        for key in set(have) - set(wanted):
            self._command(f"del map {path} {key}")

    def _command(self, command: str) -> None:
        answer = self.api(command).strip()
        if answer and not answer.startswith(("New server", "Server deleted", "Done")):
            raise RuntimeError(f"HAProxy refused {command!r}: {answer}")


def _server_name(target: TaskTarget) -> str:
    return f"t-{target.host}-{target.port}"


def _servers(state: str) -> set[str]:
    """Server names in ``show servers state`` output (its header line starts with '#')."""
    names = set()
    for line in state.splitlines():
        fields = line.split()
        if len(fields) > 3 and not line.startswith("#") and fields[0].isdigit():
            names.add(fields[3])
    return names


def _prefix_regex(prefix: str) -> str:
    parts = ["[^/]+" if placeholder("/" + p) else re.escape(p) for p in prefix_segments(prefix)]
    return "".join(f"/{part}" for part in parts)


def _frontend_rules(backend: _Backend) -> list[str]:
    route, name = backend.route, backend.name
    conditions, lines = [], []
    if prefix_segments(route.prefix):
        if placeholder(route.prefix) is not None:
            lines.append(f"    acl {name}_path path_reg ^{_prefix_regex(route.prefix)}(/|$)")
        else:
            # two lines of one ACL are OR'ed: the prefix itself, or it and a '/'
            lines += [f"    acl {name}_path path {route.prefix}",
                      f"    acl {name}_path path_beg {route.prefix}/"]
        conditions.append(f"{name}_path")
    if route.host:
        fetch = "hdr(host)" if ":" in route.host else "req.hdr(host),field(1,:)"
        lines.append(f"    acl {name}_host {fetch} -i {route.host}")
        conditions.append(f"{name}_host")
    rule = f"    use_backend {name}" + (f" if {' '.join(conditions)}" if conditions else "")
    return [*lines, rule]
