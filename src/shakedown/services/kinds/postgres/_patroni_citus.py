"""Patroni's Citus mode for the ``postgres-ha`` kind (``citus = { workers = K }``): a
coordinator group (Citus group 0) and K worker groups (1..K), each a Patroni cluster of
``members`` members in one Patroni scope, with ``citus: {group, database}`` in every member's
``patroni.yml``.

Patroni does the Citus work itself, as in production: on each group's bootstrap it creates
the database and ``CREATE EXTENSION citus`` there (with the superuser's password in
``pg_dist_authinfo`` for the nodes' connections to each other), the coordinator's leader sets
itself as the coordinator host, and on every HA cycle it registers each worker group's leader
(and replicas, as secondaries) in ``pg_dist_node``: a worker group that fails over is updated
there within a cycle of its new leader's election. The template shakedown copies has no
Citus in it (Patroni creates the extension in each group, so every group draws its own
Citus server id).

Each group is a ``PatroniGroup``, the kind's own one-cluster service with its members named
``db-group1-0`` (Patroni name, link label), its ports a slice of the service's and its log
the service's. The service (``PatroniCitusService``) composes them: ready when every group is
ready and the coordinator lists every group's leader as its primary, ``citus_get_active_
worker_nodes()`` counts K and ``citus_check_cluster_node_health()`` is all true.

Addresses: the service's URLs (``url``, ``primary_url``, ``coordinator_url``) reach the
coordinator group's leader, through HAProxy when one fronts the service (HAProxy's members
are the coordinator group's); ``groups[g]`` has each group's ``leader()``, ``members`` and
URLs. Processes are addressable as ``group1-member0`` (``group1-patroni0``,
``group1-postgres0``), by Patroni name (``db-group1-0``), or a whole group (``group1``).
Links: each member's etcd link and an inbound link (``db-group1-0-in``, its Patroni
``connect_address``, which Citus registers) whose sources are every other member of every
group, so ``faults.partition(["db-group1-0"], ["db-group0-0"])`` cuts a worker's primary from
the coordinator's. Ports: group g's are ``ctx.ports[2*members*g : 2*members*(g+1)]``."""

from __future__ import annotations

import dataclasses
import re
import secrets
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg import sql

from ....errors import FaultError, ServiceStartError
from ....process import NotReady, Spawned, wait_ready
from ....topology import Scalar
from ....topology.specs.postgres_ha import PatroniSpec
from ..._base import InternalLink, ServiceContext, SpawnedService
from ..._protocols import ClusterMember, Front
from . import _extensions
from ._family import SUPERUSER, PostgresFamily, pg_dsn, pg_url
from ._patroni_config import inbound_links
from .patroni import PatroniService

T = TypeVar("T")
COORDINATOR_GROUP = 0
# Defaults for a test cluster's Citus (the topology's settings override them); Patroni adds
# citus to shared_preload_libraries itself, with wal_level = logical.
CITUS_PARAMETERS: dict[str, Scalar] = {
    # Plain TCP between nodes: with Citus's default (sslmode=require) CREATE EXTENSION turns
    # ssl on with a generated certificate, and every inter-node connection pays a handshake.
    "citus.node_conninfo": "sslmode=disable",
    "citus.background_task_queue_interval": "100ms",
    "citus.enable_statistics_collection": False,
    # Maintenance daemons, the task queue monitor and shard moves' logical replication.
    "max_worker_processes": 24,
}
_ROLE = re.compile(r"^group(\d+)(?:-(.+))?$")


class PatroniGroup(PatroniService):
    """One Citus group of a ``PatroniCitusService``: a Patroni cluster in the service's scope,
    members named ``SERVICE-groupG-I``, logging into the service's log. Not a kind of its own
    (no ``kind=``)."""

    def __init__(self, spec: PatroniSpec, ctx: ServiceContext, *, group: int,
                 owner: PatroniCitusService) -> None:
        super().__init__(spec, ctx)
        self.group = group
        self.owner = owner
        self.password = owner.password
        self.replication_password = owner.replication_password

    @property
    def label(self) -> str:
        """The group's name in roles: ``group1``."""
        return f"group{self.group}"

    def member_name(self, index: int) -> str:
        return f"{self.owner.name}-{self.label}-{index}"

    @property
    def log_path(self) -> Path:
        return self.owner.log_path

    def _front(self) -> Front | None:
        return None  # HAProxy fronts the service (its coordinator group), not a group

    def _parameters(self) -> dict[str, Scalar]:
        own = super()._parameters()
        return {**CITUS_PARAMETERS, **own}

    def _config(self, index: int, initdb: Path) -> dict[str, Any]:
        config = super()._config(index, initdb)
        config["scope"] = self.owner.scope
        config["citus"] = {"group": self.group, "database": self.owner.database}
        return config

    def internal_links(self) -> list[InternalLink]:
        """Each member's etcd link, its inbound link shared by every other member of every
        group (the coordinator's queries, the workers' metadata syncs, replication), and its
        REST API link shared by its group's other members (their leader race)."""
        links = [InternalLink(name=f"{member.name}-{self.spec.etcd}", source=member.name,
                              to=self.spec.etcd) for member in self.members]
        everyone = self.owner.member_names()
        for member in self.members:
            peers = [name for name in everyone if name != member.name]
            group = [m.name for m in self.members if m.name != member.name]
            links += inbound_links(member, peers, group)
        return links

    def connect_address(self, member: ClusterMember) -> tuple[str, int]:
        """Where the other nodes reach ``member`` (its Patroni ``connect_address``, which
        Patroni registers with Citus)."""
        host, port = self._connect_address(member).rsplit(":", 1)
        return host, int(port)


class PatroniCitusService(PostgresFamily, SpawnedService):
    """A ``postgres-ha`` service in Patroni's Citus mode: the coordinator group and the worker
    groups (see the module's docstring)."""

    kind: ClassVar[str] = "postgres-ha"
    spec: PatroniSpec

    def __init__(self, spec: PatroniSpec, ctx: ServiceContext) -> None:
        self.groups: list[PatroniGroup] = []
        super().__init__(spec, ctx)
        self.groups_ready_seconds: float | None = None
        self.init_family()
        self.replication_password = secrets.token_urlsafe(18)
        assert spec.citus is not None
        self.groups = [self._make_group(g) for g in range(spec.citus.workers + 1)]

    def _make_group(self, group: int) -> PatroniGroup:
        per_group = 2 * self.spec.members
        ports = self.ctx.ports[per_group * group:per_group * (group + 1)]
        group_spec = self.spec.model_copy(update={"citus": None, "init": (),
                                                  "databases": (self.database,)})
        ctx = dataclasses.replace(self.ctx, name=f"{self.name}-group{group}", ports=ports,
                                  data_dir=self.ctx.data_dir / f"group{group}")
        return PatroniGroup(group_spec, ctx, group=group, owner=self)

    # -- groups, members and addresses -------------------------------------------------------
    @property
    def scope(self) -> str:
        """The one Patroni scope of every group (Patroni keys each group under it)."""
        return f"{self.ctx.env_id}-{self.name}"

    @property
    def database(self) -> str:
        return self.spec.citus_database

    @property
    def coordinator(self) -> PatroniGroup:
        return self.groups[COORDINATOR_GROUP]

    @property
    def worker_groups(self) -> list[PatroniGroup]:
        return self.groups[1:]

    def group(self, which: int | str) -> PatroniGroup:
        """A group by number (0 is the coordinator's) or label (``group1``)."""
        number = which if isinstance(which, int) else _group_number(which)
        if number is None or not 0 <= number < len(self.groups):
            raise FaultError(
                f"service {self.name!r} has no Citus group {which!r}",
                checked=[f"groups: {', '.join(g.label for g in self.groups)}"],
                fix=["name a group by number (0 is the coordinator's) or as groupN"])
        return self.groups[number]

    def member_names(self) -> list[str]:
        """Every member of every group, by Patroni name."""
        return [group.member_name(i) for group in self.groups
                for i in range(self.spec.members)]

    def all_members(self) -> dict[str, str]:
        """Every member of every group: Patroni name → its own URL (for a role sampler)."""
        return {m.name: m.url for group in self.groups for m in group.members}

    def member_groups(self) -> dict[str, str]:
        """Every member's group label (``group1``): a role sampler's ``groups``, so that
        ``single_leader`` wants one primary per group."""
        return {m.name: group.label for group in self.groups for m in group.members}

    @property
    def members(self) -> list[ClusterMember]:
        """The coordinator group's members (what HAProxy routes to)."""
        return self.coordinator.members

    def leader(self) -> ClusterMember | None:
        """The coordinator group's leader."""
        return self.coordinator.leader()

    def replicas(self) -> list[ClusterMember]:
        return self.coordinator.replicas()

    def _front(self) -> Front | None:
        front = self.ctx.front()
        return front if isinstance(front, Front) else None

    def _coordinator_address(self) -> tuple[str, int]:
        front = self._front()
        if front is not None:
            return front.host, front.primary_port
        return self.coordinator._primary_address()

    @property
    def host(self) -> str:
        return self._coordinator_address()[0]

    @property
    def port(self) -> int:
        return self._coordinator_address()[1]

    def url_for(self, database: str, *, host: str | None = None, port: int | None = None) -> str:
        address = self._coordinator_address()
        return pg_url(SUPERUSER, self.password, host or address[0], port or address[1],
                      database)

    @property
    def url(self) -> str:
        return self.url_for(self.database)

    @property
    def primary_url(self) -> str:
        """The coordinator group's leader, through HAProxy's primary port when it fronts the
        service."""
        return self.url

    @property
    def coordinator_url(self) -> str:
        return self.url

    @property
    def replica_url(self) -> str:
        front = self._front()
        if front is not None:
            return pg_url(SUPERUSER, self.password, front.host, front.replica_port,
                          self.database)
        return self.coordinator.replica_url

    @property
    def dsn(self) -> str:
        host, port = self._coordinator_address()
        return pg_dsn(SUPERUSER, self.password, host, port, self.database)

    def exports(self) -> dict[str, str]:
        host, port = self._coordinator_address()
        return {"host": host, "port": str(port), "url": self.url, "user": SUPERUSER,
                "password": self.password, "database": self.database, "dsn": self.dsn,
                "primary_url": self.primary_url, "replica_url": self.replica_url,
                "coordinator_url": self.coordinator_url}

    def version(self) -> str:
        citus = _extensions.installed(self.binaries).get(_extensions.CITUS)
        return f"{self.coordinator.version()}, Citus {citus.version if citus else '?'}"

    def internal_links(self) -> list[InternalLink]:
        return [link for group in self.groups for link in group.internal_links()]

    # -- processes ---------------------------------------------------------------------------
    @property
    def processes(self) -> list[Spawned]:
        """Every group's processes, their roles prefixed with the group's (``group1-...``)."""
        return [dataclasses.replace(p, role=f"{group.label}-{p.role}")
                for group in getattr(self, "groups", []) for p in group.processes]

    @processes.setter
    def processes(self, value: list[Spawned]) -> None:
        for group in getattr(self, "groups", []):
            prefix = f"{group.label}-"
            group.processes = [dataclasses.replace(p, role=p.role.removeprefix(prefix))
                               for p in value if p.role.startswith(prefix)]

    def roles(self) -> list[str]:
        return [f"{group.label}-{role}" for group in self.groups for role in group.roles()]

    def _resolve(self, role: str) -> tuple[PatroniGroup, str | None]:
        """The group a role names and the role within it (None: the whole group)."""
        found = _ROLE.match(role)
        if found and int(found.group(1)) < len(self.groups):
            return self.groups[int(found.group(1))], found.group(2)
        for group in self.groups:
            if group._index_of(role) is not None and role.startswith(f"{self.name}-"):
                return group, role
        raise FaultError(
            f"service {self.name!r} has no process {role!r}",
            checked=[f"processes of {self.name}: {', '.join(self.roles())}"],
            fix=["name a group (group1), a member (group1-member0, or its Patroni name "
                 f"{self.groups[-1].member_name(0)}), or group1-patroni0 / group1-postgres0"])

    def _select(self, role: str | None) -> list[Spawned]:
        if role is None:
            return [p for group in self.groups for p in group._select(None)]
        group, inner = self._resolve(role)
        return group._select(inner)

    def kill(self, role: str | None = None) -> None:
        """SIGKILL a member (``group1-member0``), one of its processes, a group or all."""
        if role is None:
            _parallel(self.groups, lambda group: group.kill(None))
            return
        group, inner = self._resolve(role)
        group.kill(inner)

    def status(self) -> str:
        states = {group.status() for group in self.groups}
        return states.pop() if len(states) == 1 else "partial"

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> None:
        _extensions.require(self.binaries, (_extensions.CITUS, *self.spec.extensions),
                            service=self.name, kind=self.kind)
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ctx.run_as:
            self.ctx.run_as.chown(self.ctx.data_dir)
        self.coordinator.prepare()  # builds the template once; the others copy it
        _parallel(self.worker_groups, lambda group: group.prepare())

    def start(self) -> None:
        for group in self.groups:
            group.start()

    def wait_ready(self) -> None:
        """Every group ready (one leader, replicas streaming), then the coordinator's Citus
        metadata lists every group's leader and every worker is healthy."""
        began = time.monotonic()
        _parallel(self.groups, lambda group: group.wait_ready())
        self.groups_ready_seconds = time.monotonic() - began  # the rest: Citus registration
        self.wait_registered(max(0.1, self.spec.ready_timeout - (time.monotonic() - began)))
        self.ready_seconds = time.monotonic() - began

    def registered_primaries(self) -> dict[int, tuple[str, int]]:
        """``pg_dist_node``'s active primary of each group, on the coordinator's leader."""
        with self.connect() as conn:
            rows = conn.execute("SELECT groupid, nodename, nodeport FROM pg_dist_node "
                                "WHERE noderole = 'primary' AND isactive").fetchall()
        return {int(r[0]): (str(r[1]), int(r[2])) for r in rows}

    def _registered_probe(self) -> bool:
        expected: dict[int, tuple[str, int]] = {}
        for group in self.groups:
            leader = group.leader()
            if leader is None:
                raise NotReady(f"{group.label} has no leader")
            expected[group.group] = group.connect_address(leader)
        try:
            registered = self.registered_primaries()
        except psycopg.Error as exc:
            raise NotReady(f"the coordinator's metadata: {exc}") from exc
        wrong = [f"{group.label}: {registered.get(group.group)} (leader at "
                 f"{expected[group.group]})" for group in self.groups
                 if registered.get(group.group) != expected[group.group]]
        if wrong:
            raise NotReady("pg_dist_node's primaries: " + "; ".join(wrong))
        with self.connect() as conn:
            active = conn.execute("SELECT count(*) FROM citus_get_active_worker_nodes()"
                                  ).fetchone()
            failing = conn.execute(
                "SELECT from_nodename || ':' || from_nodeport || ' -> ' || to_nodename || ':' "
                "|| to_nodeport FROM citus_check_cluster_node_health() WHERE NOT result"
            ).fetchall()
        if not active or active[0] != len(self.worker_groups):
            raise NotReady(f"{active[0] if active else 0} of {len(self.worker_groups)} "
                           "workers active")
        if failing:
            raise NotReady("node health check failing: " + ", ".join(r[0] for r in failing))
        return True

    def wait_registered(self, timeout: float | None = None) -> None:
        """Wait until the coordinator's leader lists every group's current leader as that
        group's primary (Patroni updates ``pg_dist_node`` on its next HA cycle after a
        failover) and every worker is active and healthy."""
        check = ("on the coordinator's leader: pg_dist_node's primary of every group is that "
                 "group's Patroni leader, citus_get_active_worker_nodes() counts "
                 f"{len(self.worker_groups)}, citus_check_cluster_node_health() all true")
        wait_ready(self._registered_probe, service=self.name, check=check,
                   timeout=timeout or self.spec.ready_timeout, interval=0.02,
                   max_interval=0.2)

    def after_first_ready(self) -> None:
        """The declared databases other than the Citus one (Patroni made that one) on the
        coordinator, then the ``init`` files there, in the Citus database."""
        leader = self.coordinator.leader()
        if leader is None:
            raise ServiceStartError(f"service {self.name!r} lost its coordinator's leader "
                                    "right after start", checked=["Patroni GET /cluster"],
                                    fix=["read the log lines of the service"],
                                    details=self.log_tail(30))
        with self.coordinator.connect(leader) as conn:
            conn.execute("SET synchronous_commit = on")
            for database in self.spec.databases:
                if database != self.database:
                    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        self.run_init_files(leader.host, leader.port, where=f" on coordinator {leader.name}")
        for group in self.groups:
            group.initialized = True
        self.initialized = True

    def start_again(self) -> None:
        """Start every member not running (all after a stop, one after a kill) and wait
        until every group and the coordinator's metadata are ready again."""
        _parallel(self.groups, lambda group: group.start_again())
        self.wait_registered()

    def stop(self) -> None:
        _parallel(self.groups, lambda group: group.stop())

    # -- connections -------------------------------------------------------------------------
    def connect(self, group: int | str = COORDINATOR_GROUP, member: int | str | None = None,
                database: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """A superuser connection (autocommit) to a group's leader (or member), in the Citus
        database unless ``database`` says otherwise."""
        return self.group(group).connect(member, database or self.database, **kwargs)

    # -- persistence -------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {**self.family_state(), "replication_password": self.replication_password}

    def restore_state(self, state: Any) -> None:
        super().restore_state(state)
        self.restore_family(state)
        self.replication_password = state.get("replication_password",
                                              self.replication_password)
        for group in self.groups:
            group.password = self.password
            group.replication_password = self.replication_password
            group.initialized = self.initialized


def _group_number(label: str) -> int | None:
    found = _ROLE.match(label)
    return int(found.group(1)) if found and found.group(2) is None else None


def _parallel(items: Sequence[T], work: Callable[[T], None]) -> None:
    """``work`` on every item at once; the first error is raised once all are done."""
    if len(items) <= 1:
        for item in items:
            work(item)
        return
    with ThreadPoolExecutor(max_workers=len(items)) as pool:
        futures = [pool.submit(work, item) for item in items]
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:
        raise errors[0]  # type: ignore[misc]


PatroniService.citus_class = PatroniCitusService
