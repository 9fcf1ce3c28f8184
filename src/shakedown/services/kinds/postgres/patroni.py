"""The ``postgres-ha`` kind: a PostgreSQL cluster of ``members`` managed by Patroni, with an
``etcd`` service as its DCS.

Fast start, with Patroni's own bootstrap flow kept:
- every member's data directory is prepared from shakedown's initdb template cache: ``prepare``
  copies the template next to each member's (empty) data directory;
- the member that wins Patroni's initialize race runs "initdb", which here is a script
  (``postgresql.bin_name.initdb``) that moves that copy into place and sets the superuser's
  password in single-user mode (~40 ms instead of a real initdb);
- the other members are created by a custom replica method that moves their own copy into
  place: same system identifier as the leader and a clean checkpoint the leader's WAL continues
  from, so they stream without a base backup (``basebackup`` with ``checkpoint: fast`` stays
  as the fallback, for a member re-created later);
- ``wal_retrieve_retry_interval = 100ms`` so that a replica retries its first stream quickly;
- member 0 starts first and the others once its REST API answers: three interpreters starting
  at once on two cores slow the one that matters, and the others only wait for a leader;
- the replicas' slots are created on the new leader as soon as it accepts connections, with
  the names Patroni gives them, instead of on its next HA cycle (up to ``loop_wait`` later).

Every member runs Patroni as the unprivileged service user from a Python environment that user
can execute (``/opt/shakedown/patroni-venv`` by default, ``SHAKEDOWN_PATRONI`` to override).
Processes are addressable per member: roles ``patroni0`` (Patroni's process group) and
``postgres0`` (the postmaster Patroni started in its own session, found through
``postmaster.pid``); ``member0`` or the Patroni member name selects both.

Ports: ``ctx.ports[i]`` is member i's PostgreSQL port, ``ctx.ports[members + i]`` its REST API."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar

import httpx
import psycopg

from ....errors import FaultError, MissingBinaryError, ServiceStartError
from ....netproxy import SOURCE_VARIABLE
from ....process import NotReady, Spawned, copy_tree, spawn, wait_ready
from ....topology import ServiceSpec
from ....topology.specs.postgres_ha import PatroniSpec
from ..._base import LOOPBACK, DoctorLine, Service
from ..._protocols import ClusterMember, Front
from . import _extensions
from ._binaries import Template
from ._family import SUPERUSER, PostgresFamily, pg_dsn, pg_url, superuser_connection
from ._patroni_config import (
    INITDB_SCRIPT,
    INSTALL_HINT,
    NAMESPACE,
    PatroniConfig,
    find_patroni,
    slot_name,
)
from ._patroni_processes import Live, PatroniProcesses

Member = ClusterMember


class PatroniService(PostgresFamily, PatroniConfig, PatroniProcesses, kind="postgres-ha"):
    stop_signal: ClassVar[int] = signal.SIGTERM
    spec: PatroniSpec
    citus_class: ClassVar[type[Service] | None] = None
    """Runs the specs with ``citus`` set; ``_patroni_citus`` (which builds on this class, so
    this module cannot import it) sets it, and the family's package imports that module."""

    @classmethod
    def doctor(cls) -> list[DoctorLine]:
        try:
            binary = find_patroni()
        except MissingBinaryError as exc:
            detail = exc.checked[-1] if exc.checked else exc.what
            return [DoctorLine("patroni (postgres-ha)", False, detail, INSTALL_HINT)]
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        detail = f"{binary}: {out.stdout.strip() or '?'}"
        return [DoctorLine("patroni (postgres-ha)", True, detail)]

    @classmethod
    def class_for(cls, spec: ServiceSpec) -> type[Service]:
        """With ``citus`` set, a Patroni cluster per Citus group (``_patroni_citus``)."""
        assert isinstance(spec, PatroniSpec)
        if spec.citus is None or cls.citus_class is None:
            return cls
        return cls.citus_class

    @classmethod
    def ports_for(cls, spec: ServiceSpec) -> int:
        """A PostgreSQL and a REST API port per member, in each Citus group if any."""
        assert isinstance(spec, PatroniSpec)
        groups = spec.citus.workers + 1 if spec.citus is not None else 1
        return 2 * spec.members * groups

    def __init__(self, spec: PatroniSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self.init_family()
        self.replication_password = secrets.token_urlsafe(18)
        self._template: Template | None = None
        self._patroni: str | None = None
        self._client: httpx.Client | None = None
        self._followers: list[int] = []
        self._spawned_at = 0.0

    # -- members and addresses ---------------------------------------------------------------
    def member_name(self, index: int) -> str:
        return f"{self.name}{index}"

    def member(self, which: int | str) -> Member:
        """Member by index, Patroni name (``db0``) or role (``member0``, ``patroni0``)."""
        index = which if isinstance(which, int) else self._index_of(which)
        if index is None or not 0 <= index < self.member_count:
            raise FaultError(
                f"service {self.name!r} has no member {which!r}",
                checked=[f"members: {', '.join(m.name for m in self.members)}"],
                fix=["name a member by index, by name, or as memberN / patroniN / postgresN"])
        port = self.ctx.ports[index]
        return Member(index=index, name=self.member_name(index), host=LOOPBACK, port=port,
                      rest_port=self.ctx.ports[self.member_count + index],
                      url=self._url(LOOPBACK, port))

    @property
    def members(self) -> list[Member]:
        return [self.member(i) for i in range(self.member_count)]

    def _index_of(self, which: str) -> int | None:
        for i in range(self.member_count):
            if which in (self.member_name(i), f"member{i}", f"patroni{i}", f"postgres{i}"):
                return i
        return None

    def _url(self, host: str, port: int, database: str | None = None) -> str:
        return pg_url(SUPERUSER, self.password, host, port, database or self.database)

    def url_for(self, database: str, *, host: str | None = None, port: int | None = None) -> str:
        primary = self._primary_address()
        return self._url(host or primary[0], port or primary[1], database)

    def _front(self) -> Front | None:
        """The service that fronts this cluster (HAProxy), if the topology has one."""
        front = self.ctx.front()
        return front if isinstance(front, Front) else None

    def _primary_address(self) -> tuple[str, int]:
        front = self._front()
        if front is not None:
            return front.host, front.primary_port
        leader = self.leader()
        chosen = leader if leader is not None else self.member(0)
        return chosen.host, chosen.port

    @property
    def host(self) -> str:
        return self._primary_address()[0]

    @property
    def port(self) -> int:
        return self._primary_address()[1]

    @property
    def url(self) -> str:
        return self.primary_url

    @property
    def primary_url(self) -> str:
        """Through HAProxy's primary port when an haproxy service fronts the cluster, else the
        current leader's own URL."""
        host, port = self._primary_address()
        return self._url(host, port)

    @property
    def replica_url(self) -> str:
        """Through HAProxy's replica port when there is one, else a replica's own URL (the
        leader's when there is no replica)."""
        front = self._front()
        if front is not None:
            return self._url(front.host, front.replica_port)
        replicas = self.replicas()
        if replicas:
            return replicas[0].url
        return self.primary_url

    @property
    def dsn(self) -> str:
        host, port = self._primary_address()
        return pg_dsn(SUPERUSER, self.password, host, port, self.database)

    def exports(self) -> dict[str, str]:
        host, port = self._primary_address()
        return {"host": host, "port": str(port), "url": self._url(host, port),
                "user": SUPERUSER, "password": self.password, "database": self.database,
                "dsn": self.dsn, "primary_url": self._url(host, port),
                "replica_url": self.replica_url,
                # what patronictl needs besides the DCS address (``shakedown env`` writes it)
                "scope": self.scope, "namespace": NAMESPACE}

    # -- what Patroni says -------------------------------------------------------------------
    def _http(self) -> httpx.Client:
        with self._lock:
            if self._client is None:  # one client, thread-safe, for every REST call
                self._client = httpx.Client(timeout=1.0, trust_env=False)
            return self._client

    def rest(self, member: Member | int | str, path: str,
             timeout: float = 1.0) -> httpx.Response:
        """``GET path`` on a member's REST API."""
        chosen = member if isinstance(member, Member) else self.member(member)
        return self._http().get(f"{chosen.rest_url}{path}", timeout=timeout)

    def cluster_view(self) -> dict[str, Any]:
        """Patroni's ``GET /cluster`` from the first member that answers."""
        last: Exception | None = None
        for member in self.members:
            try:
                response = self.rest(member, "/cluster")
                if response.status_code == 200:
                    view: dict[str, Any] = response.json()
                    return view
            except httpx.HTTPError as exc:
                last = exc
        raise NotReady(f"no member's REST API answered GET /cluster ({last})")

    def _by_role(self, *roles: str) -> list[Member]:
        try:
            view = self.cluster_view()
        except NotReady:
            return []
        by_name = {m.name: m for m in self.members}
        return [by_name[m["name"]] for m in view.get("members", [])
                if m.get("role") in roles and m.get("name") in by_name]

    def leader(self) -> Member | None:
        """The member holding the leader lock (from Patroni's REST API), or None."""
        found = self._by_role("leader", "standby_leader")
        return found[0] if found else None

    def replicas(self) -> list[Member]:
        """Members Patroni lists as replicas (including synchronous standbys)."""
        return self._by_role("replica", "sync_standby", "quorum_standby")

    # -- binaries and files ------------------------------------------------------------------
    @property
    def patroni(self) -> str:
        if self._patroni is None:
            self._patroni = find_patroni()
        return self._patroni

    def version(self) -> str:
        out = subprocess.run([self.patroni, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
        return f"{out or 'patroni ?'}, {self.pg_version()}"

    def member_dir(self, index: int) -> Path:
        return self.ctx.data_dir / f"m{index}"

    def pgdata(self, index: int) -> Path:
        return self.member_dir(index) / "pgdata"

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> None:
        self.patroni  # noqa: B018 - a missing Patroni fails before anything starts
        _extensions.require(self.binaries, self.spec.extensions, service=self.name,
                            kind=self.kind)
        # The extensions exist in the template (postgres, template1): nothing to create.
        self._template = _extensions.ensure_template_with(
            self.binaries, self.spec.initdb_options, self.ctx.run_as, self.spec.extensions)
        run_as = self.ctx.run_as
        self.ctx.data_dir.mkdir(parents=True, exist_ok=True)
        initdb = self.ctx.data_dir / "initdb"
        initdb.write_text(INITDB_SCRIPT.format(superuser=SUPERUSER,
                                               postgres=self.binaries.tool("postgres")))
        initdb.chmod(0o755)
        if run_as:
            run_as.chown(self.ctx.data_dir)
        with ThreadPoolExecutor(max_workers=self.member_count) as pool:
            for future in [pool.submit(self._prepare_member, i, initdb)
                           for i in range(self.member_count)]:
                future.result()

    def _prepare_member(self, index: int, initdb: Path) -> None:
        assert self._template is not None
        run_as = self.ctx.run_as
        directory = self.member_dir(index)
        directory.mkdir(mode=0o700)
        if run_as:
            run_as.chown(directory)
        copy_tree(self._template.data_dir, directory / "staged", run_as)
        config = directory / "patroni.yml"
        config.write_text(json.dumps(self._config(index, initdb), indent=2))
        config.chmod(0o600)
        if run_as:
            run_as.chown(config)

    def _spawn_member(self, index: int) -> Spawned:
        # The source label goes down to postgres and its walreceiver, so the member's own
        # link (shared by its peers) can tell which peer a connection comes from.
        return spawn([self.patroni, str(self.member_dir(index) / "patroni.yml")],
                     role=f"patroni{index}", log_path=self.log_path, env_id=self.ctx.env_id,
                     env={SOURCE_VARIABLE: self.member(index).name},
                     cwd=self.member_dir(index), run_as=self.ctx.run_as)

    def start(self) -> None:
        """Spawn the first member; the others follow once its Patroni is up (see
        ``_start_followers``)."""
        self.processes = [self._spawn_member(0)]
        self._followers = list(range(1, self.member_count))
        self._spawned_at = time.monotonic()

    def _first_member_up(self) -> bool:
        """Member 0's REST API answers, or a second passed since it was spawned: then the
        others may start (see ``_start_followers``)."""
        if time.monotonic() - self._spawned_at >= 1.0:
            return True
        self.rest(0, "/liveness", timeout=0.1)
        return True

    def _start_followers(self) -> None:
        """Spawn the other members, once the first one's REST API answers (or after a second).

        They cannot do anything before a leader exists, and three Python interpreters starting
        at once on a small machine slow the first one down: started after it, they leave it
        the CPU, it wins the initialize race (so the first leader is member 0), and they are
        up by the time it holds the leader lock."""
        with self._lock:
            followers, self._followers = self._followers, []
            self._processes.extend(self._spawn_member(i) for i in followers)

    def start_member(self, which: int | str) -> None:
        """Start one member's Patroni again after a kill (it adopts a running postgres)."""
        index = self.member(which).index
        with self._lock:
            current = [p for p in self.processes if p.role == f"patroni{index}"]
            if any(p.alive() for p in current):
                return
            others = [p for p in self.processes if p.role != f"patroni{index}"]
            self.processes = [*others, self._spawn_member(index)]

    def start_again(self) -> None:
        """Start the members whose Patroni is not running (all after a stop, one after a kill
        of one: it rejoins as a replica, rewound if needed) and wait until the cluster is
        ready again (one leader, every replica streaming)."""
        with self._lock:
            alive = {p.role for p in self._patroni_processes() if p.alive()}
            if not alive:
                self.start()
            for index in range(self.member_count):
                if f"patroni{index}" not in alive and index not in self._followers:
                    self.start_member(index)
        self.wait_ready()

    def member_state(self, member: Member, timeout: float = 1.0) -> dict[str, Any]:
        """Patroni's ``GET /patroni`` of one member."""
        response = self.rest(member, "/patroni", timeout)
        state: dict[str, Any] = response.json()
        return state

    def _running_primary(self) -> Member:
        """The member running as primary and accepting connections (NotReady until one is)."""
        for member in self.members:
            try:
                state = self.member_state(member, timeout=0.25)
            except (httpx.HTTPError, ValueError):
                continue
            if state.get("role") in ("primary", "master") and state.get("state") == "running":
                with self.connect(member) as conn:
                    conn.execute("SELECT 1")
                return member
        raise NotReady("no member runs as primary yet")

    def _ready_probe(self) -> bool:
        """One leader (GET /primary 200) and every other member streaming; with synchronous
        mode, a synchronous standby chosen. Reads only."""
        leaders = []
        waiting = []
        for member in self.members:
            try:
                # Short: a member's REST API blocks while its postgres starts; the others
                # must not wait for it.
                state = self.member_state(member, timeout=0.25)
            except (httpx.HTTPError, ValueError) as exc:
                waiting.append(f"{member.name}: REST API not answering ({type(exc).__name__})")
                continue
            role, running = state.get("role"), state.get("state") == "running"
            if role in ("primary", "master") and running:
                if self.rest(member, "/primary", timeout=0.25).status_code == 200:
                    leaders.append(member.name)
                else:
                    waiting.append(f"{member.name}: primary without the leader lock yet")
            elif role == "replica" and running and state.get("replication_state") == "streaming":
                continue
            else:
                waiting.append(f"{member.name}: role {role}, state {state.get('state')}, "
                               f"replication {state.get('replication_state')}")
        if len(leaders) != 1:
            waiting.insert(0, f"leaders: {leaders or 'none'}")
        if (self.spec.synchronous_mode and self.member_count > 1 and not waiting
                and not self._by_role("sync_standby", "quorum_standby")):
            waiting.append("no synchronous standby chosen yet")
        if waiting:
            raise NotReady("; ".join(waiting))
        return True

    def _create_slots(self, leader: Member) -> None:
        """Create the other members' replication slots on a new leader at once, as Patroni
        does on its next HA cycle (up to ``loop_wait`` later, while the replicas already ask
        for them): same names (``slot_name_from_member_name``), so Patroni keeps them."""
        names = [slot_name(m.name) for m in self.members if m.name != leader.name]
        try:
            with self.connect(leader) as conn:
                for name in names:
                    conn.execute(
                        "SELECT pg_catalog.pg_create_physical_replication_slot(%s, true) "
                        "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots "
                        "WHERE slot_name = %s)", (name, name))
        except psycopg.Error:
            return  # leadership moved on: Patroni creates them on the new leader's next cycle

    def wait_ready(self) -> None:
        """In three waits, each on a probe that only reads, with the work between them:
        member 0 up → the followers spawned; a primary accepting connections → its replicas'
        slots created; then the whole cluster ready (one leader, every replica streaming)."""
        began = time.monotonic()
        watch = Live(self._patroni_processes)

        def stage(probe: Callable[[], Any], check: str) -> None:
            left = max(0.1, self.spec.ready_timeout - (time.monotonic() - began))
            wait_ready(probe, service=self.name, check=check, timeout=left, watch=watch,
                       interval=0.01, max_interval=0.05)

        if self._followers:
            stage(self._first_member_up, "member 0's Patroni REST API answers GET /liveness")
            self._start_followers()
        primary: list[Member] = []

        def found_primary() -> bool:
            primary.append(self._running_primary())
            return True

        stage(found_primary, "a member runs as primary and accepts connections")
        self._create_slots(primary[-1])
        stage(self._ready_probe, f"Patroni REST API: one leader (GET /primary 200) and "
                                 f"{self.member_count - 1} replica(s) streaming")
        self.ready_seconds = time.monotonic() - began

    def wait_leader(self, timeout: float, exclude: str | None = None) -> Member:
        """Wait until a member (other than ``exclude``) holds the leader lock and runs as
        primary; return it."""
        found: list[Member] = []

        def probe() -> bool:
            leader = self.leader()
            if leader is None or leader.name == exclude:
                raise NotReady(f"leader: {leader.name if leader else 'none'}")
            if self.rest(leader, "/primary").status_code != 200:
                raise NotReady(f"{leader.name} holds the lock but is not running as primary")
            found.append(leader)
            return True

        wait_ready(probe, service=self.name, check="a leader running as primary",
                   timeout=timeout, interval=0.02, max_interval=0.1)
        return found[-1]

    def connect(self, member: Member | int | str | None = None,
                database: str | None = None, **kwargs: Any) -> psycopg.Connection[Any]:
        """A superuser connection (autocommit) to a member, or to the leader."""
        if member is None:
            leader = self.leader()
            if leader is None:
                raise ServiceStartError(f"service {self.name!r} has no leader",
                                        checked=["Patroni GET /cluster"],
                                        fix=["wait for a failover to finish"])
            chosen = leader
        else:
            chosen = member if isinstance(member, Member) else self.member(member)
        return superuser_connection(chosen.host, chosen.port, self.password, database, **kwargs)

    def after_first_ready(self) -> None:
        leader = self.leader()
        if leader is None:
            raise ServiceStartError(f"service {self.name!r} lost its leader right after start",
                                    checked=["Patroni GET /cluster"],
                                    fix=["read the log lines of the service"],
                                    details=self.log_tail(30))
        with self.connect(leader) as conn:
            self.create_databases(conn)
        self.run_init_files(leader.host, leader.port, where=f" on leader {leader.name}")
        self.initialized = True

    # -- persistence -------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {**self.family_state(), "replication_password": self.replication_password}

    def restore_state(self, state: Any) -> None:
        super().restore_state(state)
        self.restore_family(state)
        self.replication_password = state.get("replication_password",
                                              self.replication_password)


