"""The ``citus`` kind: a Citus cluster of a coordinator and ``workers`` workers, each a
PostgreSQL server run with the postgres kind's mechanics (a copy of the template cache, its
settings, its readiness probe and password handling: ``CitusNode`` is the family's
``PostgresServer``, from ``_server``).

Start:
- the nodes copy one template in which ``CREATE EXTENSION citus`` (and the other
  ``extensions``) already ran in ``postgres`` and ``template1`` (``_extensions``: built once per
  machine), with ``citus`` first in ``shared_preload_libraries``; they start in parallel;
- once every node answers SQL: the cluster password on every node, the declared databases on
  every node (Citus does not propagate ``CREATE DATABASE``; each starts from template1, so it
  has the extensions), then in each database ``citus_set_coordinator_host`` and
  ``citus_add_node`` for every worker; ``init`` runs on the coordinator (Citus propagates
  what it distributes);
- ready when, on the coordinator, ``citus_get_active_worker_nodes()`` counts ``workers`` and
  every row of ``citus_check_cluster_node_health()`` is true.

Inter-node traffic goes through links shakedown makes itself: every node is registered with
Citus at the port of its inbound link (``db-worker1-in``), whose sources are the other nodes
(each node's postgres carries its label in ``SHAKEDOWN_SOURCE``), so
``faults.partition(["db-worker1"], ["db-coordinator"])`` cuts a worker from the coordinator.
Clients (tests) reach the nodes directly. Nodes authenticate to each other with the cluster's
password from a pgpass file.

Processes are addressable per node: roles ``coordinator``, ``worker1`` ... ``workerN``.
Ports: ``ctx.ports[0]`` is the coordinator's, ``ctx.ports[i]`` worker i's."""

from __future__ import annotations

import secrets
import signal
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg import sql

from ....errors import FaultError
from ....netproxy import SOURCE_VARIABLE
from ....process import NotReady, Spawned, signal_group, spawn, stop_group, wait_ready
from ....topology import ServiceSpec
from ....topology.specs.citus import CitusSpec
from ....topology.specs.postgres import PostgresSpec
from ..._base import LOOPBACK, DoctorLine, InternalLink, ServiceContext, SpawnedService
from . import _extensions
from ._binaries import run_sql_file
from ._family import SUPERUSER, BackgroundDrops
from ._server import Database, PostgresServer

COORDINATOR = "coordinator"
# Defaults for a test cluster; the topology's settings override them.
CITUS_SETTINGS: dict[str, str | int | bool] = {
    # Plain TCP between nodes: with Citus's default (sslmode=require) CREATE EXTENSION turns
    # ssl on with a generated certificate, and every inter-node connection pays a handshake.
    "citus.node_conninfo": "sslmode=disable",
    # Background jobs (the rebalancer's moves) start within 100 ms of being queued, not 5 s.
    "citus.background_task_queue_interval": "100ms",
    # Test clusters send no usage reports.
    "citus.enable_statistics_collection": False,
    # Shard moves in the default mode ('auto': online, by logical replication) need it.
    "wal_level": "logical",
    # Maintenance daemons (one per database), the background task queue monitor, its
    # executors and the logical replication workers of shard moves: more than the 8 default.
    "max_worker_processes": 24,
}

T = TypeVar("T")


@dataclass(frozen=True)
class ShardPlacement:
    """Where one shard of a distributed or reference table lives (Citus's metadata)."""

    table: str
    shard: int
    node: str  # the node's role: coordinator, worker1, ...
    host: str
    port: int


class CitusNode(PostgresServer):
    """One node of a Citus cluster: a PostgreSQL server whose process has the node's role
    (``coordinator``, ``worker1``), whose postgres carries the node's label for the links, and
    whose log is the cluster's. Not a kind of its own (no ``kind=``): the cluster is."""

    kind: ClassVar[str] = "citus"

    def __init__(self, spec: PostgresSpec, ctx: ServiceContext, *, role: str,
                 cluster: CitusService) -> None:
        super().__init__(spec, ctx)
        self.role = role
        self.cluster = cluster
        self.password = cluster.password

    @property
    def label(self) -> str:
        """The node's name in links and partitions: ``db-worker1``."""
        return self.ctx.name

    @property
    def database(self) -> str:
        return self.cluster.database

    @property
    def log_path(self) -> Path:
        return self.cluster.log_path

    @property
    def pgpass(self) -> Path:
        return self.ctx.data_dir / "pgpass"

    def prepare(self) -> None:
        super().prepare()
        self.pgpass.write_text(f"*:*:*:{SUPERUSER}:{self.password}\n")
        self.pgpass.chmod(0o600)
        if self.ctx.run_as:
            self.ctx.run_as.chown(self.pgpass)

    def create_node_databases(self, names: Iterable[str]) -> None:
        """Create databases (from template1, which has the extensions) with a server id of
        their own (``own_server_id``)."""
        # FILE_COPY, as the postgres kind's clones: WAL_LOG writes the whole database to WAL.
        strategy = sql.SQL("WAL_LOG" if self.spec.durable else "FILE_COPY")
        with self.connect() as conn:
            for name in names:
                conn.execute(sql.SQL("CREATE DATABASE {} STRATEGY {}").format(
                    sql.Identifier(name), strategy))
        for name in names:
            self.own_server_id(name)

    def own_server_id(self, database: str) -> None:
        """Citus tells whether a node it is asked to add is itself by the ``server_id`` in
        ``pg_dist_node_metadata``, generated by ``CREATE EXTENSION``: once, in the template
        every node copied. Each node draws its own. (Not in template1: a query there starts
        Citus's maintenance daemon in it, and CREATE DATABASE then finds it in use.)"""
        with self.connect(database) as conn:
            conn.execute("UPDATE pg_dist_node_metadata SET metadata = jsonb_set(metadata, "
                         "'{server_id}', to_jsonb(citus_server_id()::text))")

    def start(self) -> None:
        proc = spawn([self.binaries.tool("postgres"), "-D", str(self.pgdata)], role=self.role,
                     log_path=self.log_path, env_id=self.ctx.env_id,
                     env={SOURCE_VARIABLE: self.label, "PGPASSFILE": str(self.pgpass)},
                     run_as=self.ctx.run_as)
        self.processes = [proc]


class CitusService(SpawnedService, kind="citus"):
    stop_signal: ClassVar[int] = signal.SIGINT
    spec: CitusSpec

    @classmethod
    def doctor(cls) -> list[DoctorLine]:
        """Whether Citus (and pgvector, which the reference suite uses) is installed."""
        return _extensions.doctor_lines()

    @classmethod
    def ports_for(cls, spec: ServiceSpec) -> int:
        assert isinstance(spec, CitusSpec)
        return spec.workers + spec.spare_workers + 1

    def __init__(self, spec: CitusSpec, ctx: ServiceContext) -> None:
        self.nodes: list[CitusNode] = []
        super().__init__(spec, ctx)
        self.password = secrets.token_urlsafe(18)
        self.nodes = [self._make_node(i) for i in range(spec.workers + spec.spare_workers + 1)]
        self.created_databases: list[str] = []  # by fresh_database, until dropped
        self._drops = BackgroundDrops(self.name)

    def _make_node(self, index: int) -> CitusNode:
        role = COORDINATOR if index == 0 else f"worker{index}"
        settings: dict[str, Any] = {**CITUS_SETTINGS, **self.spec.settings,
                                    "log_line_prefix": f"%m {role} [%p] "}
        # Built here, not read from a file: the checks for users' files (no "citus" in the
        # extensions of a postgres service) do not apply to a node of this kind.
        node_spec = PostgresSpec.model_construct(
            kind="postgres", bin_dir=self.spec.bin_dir, settings=settings,
            durable=self.spec.durable, initdb_options=self.spec.initdb_options,
            extensions=self.extensions, ready_timeout=self.spec.ready_timeout,
            stop_timeout=self.spec.stop_timeout)
        ctx = ServiceContext(
            env_id=self.ctx.env_id, name=f"{self.name}-{role}", topology=self.ctx.topology,
            data_dir=self.ctx.data_dir / role, log_dir=self.ctx.log_dir,
            ports=[self.ctx.ports[index]], run_as=self.ctx.run_as, peer=self.ctx.peer,
            peer_exports=self.ctx.peer_exports, link_port=self.ctx.link_port)
        return CitusNode(node_spec, ctx, role=role, cluster=self)

    # -- nodes and addresses -------------------------------------------------------------------
    @property
    def extensions(self) -> tuple[str, ...]:
        return (_extensions.CITUS, *(e for e in self.spec.extensions if e != _extensions.CITUS))

    @property
    def coordinator(self) -> CitusNode:
        return self.nodes[0]

    @property
    def workers(self) -> list[CitusNode]:
        """The workers every database starts with (``workers``)."""
        return self.nodes[1:1 + self.spec.workers]

    @property
    def spares(self) -> list[CitusNode]:
        """Running workers that join a database only through ``add_worker``."""
        return self.nodes[1 + self.spec.workers:]

    def add_worker(self, database: str | None = None) -> CitusNode:
        """Add the next spare worker to ``database``'s cluster (``citus_add_node``) and return
        it: the cluster has a new, empty worker, for ``citus_rebalance_start()`` to fill."""
        database = database or self.database
        with self.coordinator.connect(database) as conn:
            known = {(r[0], r[1]) for r in conn.execute(
                "SELECT nodename, nodeport FROM pg_dist_node")}
            for spare in self.spares:
                address = self.registered_address(spare)
                if address not in known:
                    conn.execute("SELECT citus_add_node(%s, %s)", address)
                    return spare
        raise FaultError(
            f"service {self.name!r}: no spare worker left to add to {database!r}",
            checked=[f"spare_workers = {self.spec.spare_workers}, all in pg_dist_node"],
            fix=["raise spare_workers in the topology"])

    def node(self, which: str) -> CitusNode:
        """A node by role (``coordinator``, ``worker1``) or label (``db-worker1``)."""
        for node in self.nodes:
            if which in (node.role, node.label):
                return node
        raise FaultError(
            f"service {self.name!r} has no node {which!r}",
            checked=[f"nodes: {', '.join(n.role for n in self.nodes)}"],
            fix=["name a node as coordinator or workerN (or SERVICE-workerN)"])

    @property
    def database(self) -> str:
        return self.spec.databases[0] if self.spec.databases else "postgres"

    @property
    def databases(self) -> tuple[str, ...]:
        """The databases that are Citus clusters: the declared ones, else ``postgres``."""
        return self.spec.databases or ("postgres",)

    @property
    def port(self) -> int:
        return self.coordinator.port

    @property
    def url(self) -> str:
        return self.coordinator.url

    @property
    def coordinator_url(self) -> str:
        return self.coordinator.url

    def url_for(self, database: str, *, host: str | None = None, port: int | None = None) -> str:
        return self.coordinator.url_for(database, host=host, port=port)

    @property
    def dsn(self) -> str:
        return self.coordinator.dsn

    def exports(self) -> dict[str, str]:
        return {"host": self.host, "port": str(self.port), "url": self.url, "user": SUPERUSER,
                "password": self.password, "database": self.database, "dsn": self.dsn,
                "coordinator_url": self.coordinator_url,
                "worker_urls": ",".join(w.url for w in self.workers)}

    def version(self) -> str:
        have = _extensions.installed(self.coordinator.binaries)
        citus = have.get(_extensions.CITUS)
        return (f"Citus {citus.version if citus else '?'}, "
                f"PostgreSQL {self.coordinator.binaries.version}")

    def registered_address(self, node: CitusNode) -> tuple[str, int]:
        """Where the other nodes reach ``node``: its inbound link (its own port without one)."""
        port = self.ctx.link_port(f"{node.label}-in")
        return LOOPBACK, port if port is not None else node.port

    def internal_links(self) -> list[InternalLink]:
        """One inbound link per node (``db-worker1-in``), shared by the other nodes: Citus
        knows each node by its link's address, so the coordinator's queries to a worker, the
        workers' connections to each other and to the coordinator all cross links."""
        links = []
        for node in self.nodes:
            others = tuple(n.label for n in self.nodes if n is not node)
            links.append(InternalLink(name=f"{node.label}-in", source=others[0], to=node.label,
                                      upstream=(node.host, node.port), peers=others[1:]))
        return links

    # -- processes ---------------------------------------------------------------------------
    @property
    def processes(self) -> list[Spawned]:
        return [p for node in getattr(self, "nodes", []) for p in node.processes]

    @processes.setter
    def processes(self, value: list[Spawned]) -> None:
        for node in getattr(self, "nodes", []):
            node.processes = [p for p in value if p.role == node.role]

    def roles(self) -> list[str]:
        return [node.role for node in self.nodes]

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> None:
        _extensions.require(self.coordinator.binaries, self.extensions, service=self.name,
                            kind=self.kind)
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        if self.ctx.run_as:
            self.ctx.run_as.chown(self.ctx.data_dir)
        self.coordinator.prepare()  # builds the template once; the workers then copy it
        _parallel(self.nodes[1:], lambda node: node.prepare())

    def start(self) -> None:
        for node in self.nodes:
            node.start()

    def wait_ready(self) -> None:
        """Every node answers SQL; after the first start, the cluster is healthy too."""
        began = time.monotonic()
        _parallel(self.nodes, lambda node: node.wait_ready())
        if self.initialized:
            self._wait_healthy()
        self.ready_seconds = time.monotonic() - began

    def after_first_ready(self) -> None:
        def first_setup(node: CitusNode) -> None:
            node.after_first_ready()  # the cluster password
            node.own_server_id("postgres")
            node.create_node_databases(self.spec.databases)

        _parallel(self.nodes, first_setup)
        for database in self.databases:
            self._register(database)
        for path in self.spec.init:
            self._run_sql_file(str(self.ctx.topology.resolve_path(path)), self.database)
        self._wait_healthy()
        self.initialized = True

    def _register(self, database: str) -> None:
        """Make ``database`` a Citus cluster: the coordinator's address first (before any
        table is distributed), then every worker."""
        host, port = self.registered_address(self.coordinator)
        with self.coordinator.connect(database) as conn:
            conn.execute("SELECT citus_set_coordinator_host(%s, %s)", (host, port))
            for worker in self.workers:
                conn.execute("SELECT citus_add_node(%s, %s)", self.registered_address(worker))

    def _health(self, database: str) -> bool:
        with self.coordinator.connect(database) as conn:
            active = conn.execute("SELECT count(*) FROM citus_get_active_worker_nodes()"
                                  ).fetchone()
            # At least: a test may have added spare workers to this database.
            if not active or active[0] < len(self.workers):
                raise NotReady(f"{active[0] if active else 0} of {len(self.workers)} "
                               "workers active")
            failing = conn.execute(
                "SELECT from_nodename || ':' || from_nodeport || ' -> ' || to_nodename || ':' "
                "|| to_nodeport FROM citus_check_cluster_node_health() WHERE NOT result"
            ).fetchall()
        if failing:
            raise NotReady("node health check failing: " + ", ".join(r[0] for r in failing))
        return True

    def _wait_healthy(self) -> None:
        check = (f"on the coordinator: citus_get_active_worker_nodes() counts "
                 f"{len(self.workers)} and citus_check_cluster_node_health() is all true")
        wait_ready(lambda: self._health(self.database), service=self.name, check=check,
                   timeout=self.spec.ready_timeout, watch=self.processes, interval=0.005,
                   max_interval=0.05)

    def _run_sql_file(self, path: str, database: str) -> None:
        node = self.coordinator
        run_sql_file(node.binaries, service=self.name, host=node.host, port=node.port,
                     password=self.password, database=database, path=path,
                     where=" on the coordinator")

    def start_again(self) -> None:
        """Start the nodes that are not running (all after a stop, one after a kill) and wait
        until the cluster is healthy again."""
        with self._lock:
            for node in self.nodes:
                if not any(p.alive() for p in node.processes):
                    node.processes = []
                    node.start()
        self.wait_ready()

    def stop(self) -> None:
        """Every node gets its fast shutdown at once, then each is waited for."""
        self.wait_for_drops()
        with self._lock:
            processes = [p for p in self.processes if p.alive()]
            for proc in processes:
                signal_group(proc.pgid, signal.SIGCONT)  # a paused node must see the signal
                signal_group(proc.pgid, signal.SIGINT)
            for proc in processes:
                stop_group(proc, signal.SIGINT, self.spec.stop_timeout)

    # -- connections and Citus's views -----------------------------------------------------------
    def connect(self, node: str | None = None, database: str | None = None,
                **kwargs: Any) -> psycopg.Connection[Any]:
        """A superuser connection (autocommit) to the coordinator, or to the node named."""
        chosen = self.coordinator if node is None else self.node(node)
        return chosen.connect(database or self.database, **kwargs)

    def citus_tables(self, database: str | None = None) -> list[dict[str, Any]]:
        """The rows of Citus's ``citus_tables`` view, as dicts."""
        with self.connect(database=database) as conn, conn.cursor(
                row_factory=psycopg.rows.dict_row) as cursor:
            rows = cursor.execute("SELECT table_name::text AS table_name, citus_table_type, "
                                  "distribution_column, colocation_id, shard_count "
                                  "FROM citus_tables ORDER BY 1").fetchall()
        return list(rows)

    def shard_placements(self, table: str, database: str | None = None) -> list[ShardPlacement]:
        """Every placement of ``table``'s shards, with the node's role, in shard order (from
        the coordinator's metadata, ``pg_dist_shard`` and ``pg_dist_shard_placement``: unlike
        the ``citus_shards`` view, it asks no worker for sizes)."""
        by_address = {self.registered_address(n): n.role for n in self.nodes}
        by_address.update({(n.host, n.port): n.role for n in self.nodes})
        with self.connect(database=database) as conn:
            rows = conn.execute(
                "SELECT p.shardid, p.nodename, p.nodeport FROM pg_dist_shard s "
                "JOIN pg_dist_shard_placement p USING (shardid) "
                "WHERE s.logicalrelid = %s::regclass ORDER BY p.shardid, p.nodeport",
                (table,)).fetchall()
        return [ShardPlacement(table=table, shard=r[0], node=by_address.get((r[1], r[2]), "?"),
                               host=r[1], port=r[2]) for r in rows]

    def shards_per_node(self, table: str, database: str | None = None) -> dict[str, int]:
        """How many placements of ``table`` each node holds (nodes without any: 0)."""
        counts = {node.role: 0 for node in self.nodes}
        for placement in self.shard_placements(table, database):
            counts[placement.node] = counts.get(placement.node, 0) + 1
        return counts

    # -- per-test databases ------------------------------------------------------------------
    def fresh_database(self, prefix: str = "test") -> Database:
        """A new database on every node, registered as a Citus cluster, with the ``init``
        files run in it. Drop it with ``drop_database(name)``."""
        name = f"{prefix}_{secrets.token_hex(4)}"
        _parallel(self.nodes, lambda node: node.create_node_databases([name]))
        self.created_databases.append(name)
        self._register(name)
        for path in self.spec.init:
            self._run_sql_file(str(self.ctx.topology.resolve_path(path)), name)
        return Database(name=name, url=self.url_for(name), service=self.name)

    def drop_database(self, name: str, *, wait: bool = True) -> None:
        """Drop a database on every node, closing its connections; with ``wait=False`` in
        the background."""
        def drop() -> None:
            _parallel(self.nodes, lambda node: node.drop_database(name))

        self._drops.run(drop, wait=wait)

    def reset_after_test(self) -> None:
        """Drop the databases the test made, on every node (in the background: the next test
        does not wait)."""
        for name in self.created_databases:
            self.drop_database(name, wait=False)
        self.created_databases.clear()

    def wait_for_drops(self) -> None:
        self._drops.wait()

    # -- persistence -------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {"password": self.password}

    def restore_state(self, state: Any) -> None:
        super().restore_state(state)
        self.password = state.get("password", self.password)
        for node in self.nodes:
            node.password = self.password
            node.initialized = self.initialized


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
