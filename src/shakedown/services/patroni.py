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
import os
import re
import secrets
import shlex
import signal
import stat
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, overload

import httpx
import psycopg
from psycopg import sql

from ..errors import FaultError, MissingBinaryError, ServiceStartError
from ..netproxy import SOURCE_VARIABLE
from ..process import (
    NotReady,
    Spawned,
    copy_tree,
    kill_group,
    pid_alive,
    signal_group,
    spawn,
    stop_group,
    tagged_processes,
    wait_ready,
)
from ..topology import ServiceSpec
from ..topology.specs.postgres_ha import PatroniSpec
from ._base import LOOPBACK, DoctorLine, InternalLink, SpawnedService
from ._pgbin import PgBinaries, Template, ensure_template, find_binaries, run_sql_file
from ._protocols import ClusterMember as Member
from ._protocols import Front

SUPERUSER = "postgres"
REPLICATION_USER = "replicator"
DEFAULT_VENV = "/opt/shakedown/patroni-venv"
VENV_VARIABLE = "SHAKEDOWN_PATRONI"
INSTALL_HINT = (f"/usr/bin/python3 -m venv {DEFAULT_VENV} && "
                f"{DEFAULT_VENV}/bin/pip install 'patroni[etcd3]>=4,<5' 'psycopg[binary]'")

BASE_PARAMETERS: dict[str, Any] = {
    "wal_retrieve_retry_interval": "100ms",  # its 5 s default delays replicas' first stream
    "wal_keep_size": "64MB",
    "max_wal_senders": 10,
    "max_replication_slots": 10,
    "hot_standby": "on",
    "wal_log_hints": "on",  # pg_rewind of a former leader
    "unix_socket_directories": "",  # TCP on loopback only
    "logging_collector": "off",
    # Segments in the data directory (pg_dynshmem), not in /dev/shm: a killed postmaster
    # leaves its segment behind, and only the data directory is removed at down.
    "dynamic_shared_memory_type": "mmap",
}
# Fewer than the postgres kind's, so that a killed member behaves as in production:
# - synchronous_commit stays on: with it off, a commit is acknowledged before its WAL leaves
#   the server's memory, and a SIGKILLed leader loses it (and so do replicas, which are sent
#   flushed WAL only);
# - full_page_writes stays on: pg_rewind needs it;
# - fsync off only skips flushes to disk: a killed process loses nothing the OS already has.
FAST_PARAMETERS: dict[str, Any] = {
    "fsync": "off",
    "shared_buffers": "16MB",
}

INITDB_SCRIPT = """#!/bin/sh
# Written by shakedown: Patroni's "initdb" for this cluster. Instead of running initdb, it
# moves the copy of shakedown's initdb template that was made next to the data directory into
# place, and sets the superuser's password (from Patroni's --pwfile) in single-user mode.
set -eu
pwfile=""
for arg; do
  case "$arg" in --pwfile=*) pwfile="${{arg#--pwfile=}}" ;; esac
  data="$arg"
done
rmdir "$data" 2>/dev/null || true
mv "${{data%/*}}/staged" "$data"
if [ -n "$pwfile" ]; then
  IFS= read -r password < "$pwfile" || true
  case "$password" in *"'"*) password=$(printf '%s' "$password" | sed "s/'/''/g") ;; esac
  printf "ALTER ROLE {superuser} PASSWORD '%s';\\n" "$password" \\
    | {postgres} --single -D "$data" -c wal_keep_size=64MB -c log_min_messages=warning \\
      postgres >/dev/null
fi
"""


def find_patroni() -> str:
    """The ``patroni`` executable of a Python environment the service user can run:
    ``SHAKEDOWN_PATRONI`` (a venv or the executable) when set, else the default venv."""
    configured = os.environ.get(VENV_VARIABLE)
    if configured:
        path = Path(configured)
        candidate = path if path.name == "patroni" else path / "bin" / "patroni"
        searched = [f"{VENV_VARIABLE}={configured} -> {candidate}"]
    else:
        candidate = Path(DEFAULT_VENV) / "bin" / "patroni"
        searched = [f"{candidate} ({VENV_VARIABLE} not set)"]
    if not candidate.is_file():
        raise _missing_patroni(searched)
    problem = _not_runnable_by_others(candidate) if os.geteuid() == 0 else ""
    if problem:
        raise _missing_patroni([*searched, problem])
    return str(candidate)


def _missing_patroni(searched: list[str]) -> MissingBinaryError:
    error = MissingBinaryError("patroni", kind="postgres-ha", searched=searched,
                               install=INSTALL_HINT)
    error.fix = [
        f"create its environment: {INSTALL_HINT}",
        "or run: bash scripts/bootstrap.sh (it does the same)",
        "from Debian's /usr/bin/python3 and at a system path: Patroni runs as the unprivileged "
        "service user, which cannot run a Python kept under /root",
        f"or point {VENV_VARIABLE} at another such environment",
    ]
    error.args = (error.render(),)
    return error


def _not_runnable_by_others(patroni: Path) -> str:
    """Why another user could not run this Patroni script and its interpreter ('' if it can)."""
    targets = [patroni]
    first = patroni.read_bytes()[:256].split(b"\n", 1)[0]
    if first.startswith(b"#!"):
        interpreter = first[2:].decode(errors="replace").split()
        if interpreter:
            targets.append(Path(os.path.realpath(interpreter[0])))
    for target in targets:
        for directory in reversed(target.parents):
            if not directory.stat().st_mode & stat.S_IXOTH:
                mode = stat.S_IMODE(directory.stat().st_mode)
                return f"{target}: other users cannot enter {directory} (mode {mode:o})"
        if not target.stat().st_mode & stat.S_IXOTH:
            return f"{target} is not executable by other users"
    return ""


class PatroniService(SpawnedService, kind="postgres-ha"):
    stop_signal: ClassVar[int] = signal.SIGTERM
    spec: PatroniSpec

    @classmethod
    def doctor(cls) -> list[DoctorLine]:
        try:
            binary = find_patroni()
        except MissingBinaryError as exc:
            detail = exc.checked[-1] if exc.checked else exc.what
            return [DoctorLine("patroni (postgres-ha)", False, detail, INSTALL_HINT)]
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False)
        return [DoctorLine("patroni (postgres-ha)", True, f"{binary}: {out.stdout.strip() or '?'}")]

    @classmethod
    def ports_for(cls, spec: ServiceSpec) -> int:
        assert isinstance(spec, PatroniSpec)
        return 2 * spec.members

    def __init__(self, spec: PatroniSpec, ctx: Any) -> None:
        super().__init__(spec, ctx)
        self.password = secrets.token_urlsafe(18)
        self.replication_password = secrets.token_urlsafe(18)
        self._binaries: PgBinaries | None = None
        self._template: Template | None = None
        self._patroni: str | None = None
        self._client: httpx.Client | None = None
        self._followers: list[int] = []
        self._slots_for = ""
        self._spawned_at = 0.0

    # -- members and addresses ---------------------------------------------------------------
    @property
    def member_count(self) -> int:
        return self.spec.members

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

    @property
    def database(self) -> str:
        return self.spec.databases[0] if self.spec.databases else "postgres"

    @property
    def user(self) -> str:
        return SUPERUSER

    def _url(self, host: str, port: int, database: str | None = None) -> str:
        return (f"postgresql://{SUPERUSER}:{self.password}@{host}:{port}/"
                f"{database or self.database}")

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
        return (f"host={host} port={port} user={SUPERUSER} password={self.password} "
                f"dbname={self.database}")

    def exports(self) -> dict[str, str]:
        host, port = self._primary_address()
        return {"host": host, "port": str(port), "url": self._url(host, port),
                "user": SUPERUSER, "password": self.password, "database": self.database,
                "dsn": self.dsn, "primary_url": self._url(host, port),
                "replica_url": self.replica_url}

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
    def binaries(self) -> PgBinaries:
        if self._binaries is None:
            self._binaries = find_binaries(self.spec.bin_dir)
        return self._binaries

    @property
    def patroni(self) -> str:
        if self._patroni is None:
            self._patroni = find_patroni()
        return self._patroni

    def version(self) -> str:
        out = subprocess.run([self.patroni, "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
        return f"{out or 'patroni ?'}, PostgreSQL {self.binaries.version}"

    def member_dir(self, index: int) -> Path:
        return self.ctx.data_dir / f"m{index}"

    def pgdata(self, index: int) -> Path:
        return self.member_dir(index) / "pgdata"

    # -- lifecycle ---------------------------------------------------------------------------
    def prepare(self) -> None:
        self.patroni  # noqa: B018 - a missing Patroni fails before anything starts
        self._template = ensure_template(self.binaries, self.spec.initdb_options, self.ctx.run_as)
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

    def _parameters(self) -> dict[str, Any]:
        parameters = dict(BASE_PARAMETERS)
        if not self.spec.durable:
            parameters.update(FAST_PARAMETERS)
        for key, value in self.spec.settings.items():
            parameters[key] = ("on" if value else "off") if isinstance(value, bool) else value
        return parameters

    def _config(self, index: int, initdb: Path) -> dict[str, Any]:
        member = self.member(index)
        directory = self.member_dir(index)
        etcd_hosts = self._etcd_hosts(index)
        staged_copy = shlex.join(["/bin/sh", "-c", 'rmdir "$1" 2>/dev/null; exec mv "$0" "$1"',
                                  str(directory / "staged"), str(self.pgdata(index))])
        return {
            "scope": f"{self.ctx.env_id}-{self.name}",
            "namespace": "/shakedown/",
            "name": member.name,
            "log": {"level": "INFO",
                    "format": f"%(asctime)s {member.name} %(levelname)s: %(message)s"},
            "restapi": {"listen": f"{member.host}:{member.rest_port}",
                        "connect_address": f"{member.host}:{member.rest_port}"},
            # use_proxies: Patroni talks to exactly these addresses (a fault proxy's, once
            # links exist) instead of discovering the etcd members' own client URLs.
            "etcd3": {"hosts": etcd_hosts, "use_proxies": True},
            "bootstrap": {
                "dcs": {
                    "ttl": self.spec.ttl,
                    "loop_wait": self.spec.loop_wait,
                    "retry_timeout": self.spec.retry_timeout,
                    "maximum_lag_on_failover": 1048576,
                    "synchronous_mode": self.spec.synchronous_mode,
                    "postgresql": {
                        "use_pg_rewind": True,
                        "use_slots": True,
                        "remove_data_directory_on_rewind_failure": True,
                        "remove_data_directory_on_diverged_timelines": True,
                        "parameters": self._parameters(),
                    },
                },
            },
            "postgresql": {
                "listen": f"{member.host}:{member.port}",
                "connect_address": self._connect_address(member),
                "data_dir": str(self.pgdata(index)),
                "bin_dir": str(self.binaries.bin_dir),
                "bin_name": {"initdb": str(initdb)},
                "pgpass": str(directory / "pgpass"),
                "authentication": {
                    "superuser": {"username": SUPERUSER, "password": self.password},
                    "replication": {"username": REPLICATION_USER,
                                    "password": self.replication_password},
                },
                "parameters": {"log_line_prefix": f"%m {member.name} [%p] "},
                "pg_hba": [
                    f"host replication {REPLICATION_USER} 127.0.0.1/32 scram-sha-256",
                    "host all all 127.0.0.1/32 scram-sha-256",
                ],
                "create_replica_methods": ["shakedown_copy", "basebackup"],
                "shakedown_copy": {"command": staged_copy, "no_params": True},
                "basebackup": {"checkpoint": "fast"},
            },
            "watchdog": {"mode": "off"},
        }

    def internal_links(self) -> list[InternalLink]:
        """Each member reaches etcd through a link of its own (``db0-dcs``), and its peers
        reach its postgres (replication, pg_rewind) through another (``db0-in``, its Patroni
        ``connect_address``), so faults can cut one member from the DCS or from its peers:
        ``faults.partition(["db0"], ["dcs"])``, ``faults.partition(["db0"], ["db1", "db2"])``.
        A member's inbound link tells which peer each connection comes from (the proxy reads
        the connecting process's SHAKEDOWN_SOURCE), so ``faults.partition(["db0", "db1"],
        ["db2"])`` cuts db2's connections into db0 and db1 and leaves db0 <-> db1 alone.
        Clients reach the members directly; HAProxy has links of its own (see haproxy.py)."""
        links = [InternalLink(name=f"{member.name}-{self.spec.etcd}", source=member.name,
                              to=self.spec.etcd) for member in self.members]
        for member in self.members:
            peers = tuple(m.name for m in self.members if m.name != member.name)
            if peers:
                links.append(InternalLink(name=f"{member.name}-in", source=peers[0],
                                          to=member.name, upstream=(member.host, member.port),
                                          peers=peers[1:]))
        return links

    def _connect_address(self, member: Member) -> str:
        """Where peers reach this member's postgres: its inbound link, when there is one."""
        port = self.ctx.link_port(f"{member.name}-in")
        return f"{LOOPBACK}:{port}" if port is not None else f"{member.host}:{member.port}"

    def _etcd_hosts(self, index: int) -> list[str]:
        port = self.ctx.link_port(f"{self.member(index).name}-{self.spec.etcd}")
        if port is not None:
            return [f"127.0.0.1:{port}"]
        etcd = self.ctx.peer_exports(self.spec.etcd)  # as this service sees it (links)
        return etcd["endpoints"].split(",")

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

    def _start_followers(self) -> None:
        """Spawn the other members once the first one's REST API answers (or after a second).

        They cannot do anything before a leader exists, and three Python interpreters starting
        at once on a small machine slow the first one down: started after it, they leave it
        the CPU, it wins the initialize race (so the first leader is member 0), and they are
        up by the time it holds the leader lock."""
        if not self._followers:
            return
        if time.monotonic() - self._spawned_at < 1.0:
            try:
                self.rest(0, "/liveness", timeout=0.1)
            except httpx.HTTPError:
                return
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

    def _ready_probe(self) -> bool:
        self._start_followers()
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
                self._create_slots(member)
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
        if self._slots_for == leader.name:
            return
        names = [_slot_name(m.name) for m in self.members if m.name != leader.name]
        try:
            with self.connect(leader) as conn:
                for name in names:
                    conn.execute(
                        "SELECT pg_catalog.pg_create_physical_replication_slot(%s, true) "
                        "WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_replication_slots "
                        "WHERE slot_name = %s)", (name, name))
        except psycopg.Error:
            return  # not accepting connections yet: the next probe tries again
        self._slots_for = leader.name

    def wait_ready(self) -> None:
        check = (f"Patroni REST API: one leader (GET /primary 200) and "
                 f"{self.member_count - 1} replica(s) streaming")
        self.ready_seconds = wait_ready(self._ready_probe, service=self.name, check=check,
                                        timeout=self.spec.ready_timeout,
                                        watch=_Live(self._patroni_processes), interval=0.01,
                                        max_interval=0.05)

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
        return psycopg.connect(host=chosen.host, port=chosen.port, user=SUPERUSER,
                               password=self.password, dbname=database or "postgres",
                               autocommit=True, connect_timeout=2, **kwargs)

    def after_first_ready(self) -> None:
        leader = self.leader()
        if leader is None:
            raise ServiceStartError(f"service {self.name!r} lost its leader right after start",
                                    checked=["Patroni GET /cluster"],
                                    fix=["read the log lines of the service"],
                                    details=self.log_tail(30))
        with self.connect(leader) as conn:
            conn.execute("SET synchronous_commit = on")
            for database in self.spec.databases:
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        for path in self.spec.init:
            self._run_sql_file(leader, str(self.ctx.topology.resolve_path(path)))
        self.initialized = True

    def _run_sql_file(self, leader: Member, path: str) -> None:
        run_sql_file(self.binaries, service=self.name, host=leader.host, port=leader.port,
                     password=self.password, database=self.database, path=path,
                     where=f" on leader {leader.name}")

    # -- processes: Patroni and the postmaster it started --------------------------------------
    def _patroni_processes(self) -> list[Spawned]:
        return [p for p in self.processes if p.role.startswith("patroni")]

    def postmaster_pid(self, index: int) -> int | None:
        """The pid of member ``index``'s running postmaster (``postmaster.pid``), or None."""
        try:
            pid = int((self.pgdata(index) / "postmaster.pid").read_text().split("\n", 1)[0])
        except (OSError, ValueError):
            return None
        return pid if _is_postmaster_of(pid, self.pgdata(index)) else None

    @property
    def processes(self) -> list[Spawned]:
        """Patroni's process of each member and the postmaster it runs now (re-read, since
        Patroni starts it again under a new pid after a crash)."""
        self._refresh_postgres()
        return self._processes

    @processes.setter
    def processes(self, value: list[Spawned]) -> None:
        self._processes = list(value)

    def _refresh_postgres(self) -> None:
        """Track each member's current postmaster as role ``postgresN`` (Patroni starts it in
        a session of its own, found through ``postmaster.pid``)."""
        with self._lock:
            kept = [p for p in getattr(self, "_processes", [])
                    if not p.role.startswith("postgres")]
            for i in range(self.member_count):
                pid = self.postmaster_pid(i)
                if pid is not None:
                    kept.append(Spawned(role=f"postgres{i}", pid=pid, pgid=_pgid(pid),
                                        log_path=self.log_path))
            self._processes = kept

    def _stray_postmasters(self, index: int) -> list[int]:
        """Postmasters of member ``index`` found by tag and data directory (one Patroni was
        starting at the moment it was killed has no postmaster.pid yet)."""
        data = str(self.pgdata(index))
        return [pid for pid in tagged_processes(self.ctx.env_id)
                if _is_postmaster_of(pid, Path(data))]

    def _select(self, role: str | None) -> list[Spawned]:
        if role is None:
            return list(self.processes)
        index = self._index_of(role)
        if index is None:
            return super()._select(role)  # the error that lists the roles
        if role.startswith(("patroni", "postgres")):
            # Not running (e.g. postgres while Patroni starts it again): nothing to act on.
            return [p for p in self.processes if p.role == role]
        return [p for p in self.processes if p.role in (f"patroni{index}", f"postgres{index}")]

    def status(self) -> str:
        """As for every process service, and 'partial' too while a member's Patroni runs
        without its postgres (killed, and not started again by Patroni yet)."""
        state = super().status()
        if state == "running":
            roles = {p.role for p in self.processes if p.alive()}
            if any(f"postgres{i}" not in roles for i in range(self.member_count)):
                return "partial"
        return state

    def roles(self) -> list[str]:
        return [*(f"member{i}" for i in range(self.member_count)),
                *(f"patroni{i}" for i in range(self.member_count)),
                *(f"postgres{i}" for i in range(self.member_count))]

    def kill(self, role: str | None = None) -> None:
        """SIGKILL: a member (``member0``/``db0``: Patroni first, so that it cannot restart
        postgres, then its postgres), only Patroni (``patroni0``), only postgres
        (``postgres0``), or every member (None)."""
        chosen = self._select(role)
        for proc in sorted(chosen, key=lambda p: not p.role.startswith("patroni")):
            kill_group(proc)
        # A postmaster that a killed Patroni was starting at that moment has no postmaster.pid
        # yet: when a whole member is killed, find it by tag and data directory.
        index = self._index_of(role) if role is not None else None
        if role is None:
            whole = list(range(self.member_count))
        elif index is not None and not role.startswith(("patroni", "postgres")):
            whole = [index]
        else:
            whole = []
        for i in whole:
            for pid in self._stray_postmasters(i):
                _kill_pid_group(pid)
        self._refresh_postgres()

    def stop(self) -> None:
        """Stop every member fast and cleanly: Patroni is killed (it keeps no state of its
        own outside the DCS, and a graceful leader shutdown waits seconds for replicas that
        are stopping too), then each postmaster gets a fast shutdown (clean checkpoint)."""
        with self._lock:
            self._refresh_postgres()
            for proc in self._patroni_processes():
                kill_group(proc)
            self._refresh_postgres()  # a postgres that Patroni started a moment ago
            postgres = [p for p in self.processes if p.role.startswith("postgres")]
            for proc in postgres:
                signal_group(proc.pgid, signal.SIGCONT)
                signal_group(proc.pgid, signal.SIGINT)
            for proc in postgres:
                stop_group(proc, signal.SIGINT, self.spec.stop_timeout)
            for index in range(self.member_count):
                for pid in self._stray_postmasters(index):
                    _kill_pid_group(pid)
            self._refresh_postgres()
            if self._client is not None:
                self._client.close()
                self._client = None

    def iter_member_processes(self) -> Iterator[tuple[Member, list[Spawned]]]:
        self._refresh_postgres()
        for member in self.members:
            yield member, [p for p in self.processes
                           if p.role in (f"patroni{member.index}", f"postgres{member.index}")]

    # -- persistence -------------------------------------------------------------------------
    def extra_state(self) -> dict[str, Any]:
        return {"password": self.password, "replication_password": self.replication_password}

    def restore_state(self, state: Any) -> None:
        super().restore_state(state)
        self.password = state.get("password", self.password)
        self.replication_password = state.get("replication_password",
                                              self.replication_password)


class _Live(Sequence[Spawned]):
    """A sequence re-read on every access: the processes a readiness wait watches, when
    members are spawned during the wait."""

    def __init__(self, source: Callable[[], list[Spawned]]) -> None:
        self._source = source

    @overload
    def __getitem__(self, index: int) -> Spawned: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Spawned]: ...
    def __getitem__(self, index: int | slice) -> Spawned | Sequence[Spawned]:
        return self._source()[index]

    def __len__(self) -> int:
        return len(self._source())

    def __iter__(self) -> Iterator[Spawned]:
        return iter(self._source())


def _slot_name(member: str) -> str:
    """Patroni's ``slot_name_from_member_name``."""
    return re.sub("[^a-z0-9_]", lambda m: "_" if m.group(0) in "-." else f"u{ord(m.group(0)):04d}",
                  member.lower())[:63]


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return False
    return (bool(argv) and os.path.basename(argv[0]) == b"postgres"
            and str(pgdata).encode() in argv)


def _pgid(pid: int) -> int:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return pid


def _kill_pid_group(pid: int) -> None:
    try:
        os.killpg(_pgid(pid), signal.SIGKILL)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 5
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.005)
