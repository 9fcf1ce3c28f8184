"""The processes of a ``postgres-ha`` member: its Patroni (spawned by shakedown, role
``patroniN``) and the postmaster Patroni started in a session of its own (role ``postgresN``,
found through ``postmaster.pid`` and re-read, since Patroni starts it again under a new pid
after a crash); addressing them by role, killing and stopping them cleanly."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, overload

from ....process import Spawned, kill_group, pid_alive, signal_group, stop_group, tagged_processes
from ....topology.specs.postgres_ha import PatroniSpec
from ..._base import ServiceContext, SpawnedService
from ..._protocols import ClusterMember


class PatroniProcesses(SpawnedService):
    """The process side of the kind (between ``SpawnedService`` and the kind's class)."""

    spec: PatroniSpec
    ctx: ServiceContext
    _lock: threading.RLock
    _client: object | None

    @property
    def member_count(self) -> int:
        return self.spec.members

    if TYPE_CHECKING:
        @property
        def members(self) -> list[ClusterMember]: ...

        def pgdata(self, index: int) -> Path: ...

        def _index_of(self, which: str) -> int | None: ...

    def _close_client(self) -> None:
        """Close what the kind keeps open (its REST client) once every member stopped."""

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
            self._close_client()

    def iter_member_processes(self) -> Iterator[tuple[ClusterMember, list[Spawned]]]:
        self._refresh_postgres()
        for member in self.members:
            yield member, [p for p in self.processes
                           if p.role in (f"patroni{member.index}", f"postgres{member.index}")]



class Live(Sequence[Spawned]):
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
