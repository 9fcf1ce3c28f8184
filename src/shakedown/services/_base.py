"""The service base: what every kind exposes (host, port, url, log, pids, exports) and the
lifecycle the environment drives (prepare once, start, wait until ready, stop).

- ``Service`` registers each subclass declared with ``kind=...`` (``class RedisService(
  ServerService, kind="redis")``): the registry is the kind table, and ``doctor`` walks it.
- ``SpawnedService``: kinds made of processes shakedown spawns get kill / pause / resume /
  restart on their process groups.
- ``ServerService``: kinds that run a server binary declare it (``binary = Binary(...)``) and
  get its lookup (``bin_dir``, PATH, the system directories), version, doctor line and install
  hint, and the readiness wait with their probe, from here.
Abilities are protocols (``_protocols``) so that faults and the plugin ask what a service
supports, not what it is."""

from __future__ import annotations

import functools
import re
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from ..errors import FaultError, MissingBinaryError
from ..process import (
    RunAs,
    Spawned,
    cgroup2,
    kill_group,
    log_tail,
    process_state,
    remove_tree,
    service_scope,
    signal_family,
    stop_family,
    stop_group,
    wait_ready,
)
from ..topology import ServiceSpec, Topology

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class DoctorLine:
    """One line of ``shakedown doctor``: a component, whether it is usable, and how to get it."""

    name: str
    ok: bool
    detail: str
    install: str = ""


@dataclass(frozen=True)
class Binary:
    """A server binary a kind runs: its name, where Debian installs it (``/usr/sbin`` is not on
    every PATH), the command that installs it, and how to read its version."""

    name: str
    install: str
    system_dirs: str = "/usr/bin:/usr/sbin:/usr/local/bin"
    version_args: tuple[str, ...] = ("--version",)
    version_pattern: str = r"(\d+\.\d+(?:\.\d+)?)"
    """The version in the first line of the output (group 1)."""

    def find(self, kind: str, bin_dir: str | None = None) -> str:
        """The binary in ``bin_dir`` when the topology gives one, else on PATH or in the
        system directories; MissingBinaryError naming what was searched otherwise."""
        if bin_dir:
            candidate = shutil.which(self.name, path=bin_dir)
            searched = [f"bin_dir = {bin_dir!r}"]
        else:
            candidate = shutil.which(self.name) or shutil.which(self.name, path=self.system_dirs)
            searched = [f"{self.name} on PATH and in {self.system_dirs}"]
        if candidate is None:
            raise MissingBinaryError(self.name, kind=kind, searched=searched,
                                     install=self.install)
        return candidate

    def version_line(self, path: str) -> str:
        out = subprocess.run([path, *self.version_args], capture_output=True, text=True,
                             check=False)
        lines = (out.stdout or out.stderr).strip().splitlines()
        return lines[0] if lines else "?"

    def version(self, path: str) -> str:
        found = re.search(self.version_pattern, self.version_line(path))
        return found.group(1) if found else "?"


@dataclass
class ServiceContext:
    """What the environment gives a service: its directories, ports, user and peers.

    ``peer_exports(name)`` returns another service's attributes *as seen by this service*
    (a link's proxy address instead of the real one, once links exist).
    """

    env_id: str
    name: str
    topology: Topology
    data_dir: Path
    log_dir: Path
    ports: list[int]
    run_as: RunAs | None
    peer: Callable[[str], Service]
    peer_exports: Callable[[str], Mapping[str, str]]
    link_port: Callable[[str], int | None] = lambda _name: None
    """The proxy port of one of the service's own internal links (None without a proxy)."""
    volume_dir: Path | None = None
    """Where the service's named volumes live: in the state directory, outside the data
    directory, so that a kept volume outlives ``down`` and the next ``up`` finds it."""
    history_file: Path | None = None
    """The environment's history (JSON lines), for processes that record events themselves."""
    origin: float | None = None
    """The wall-clock time zero of that history."""

    def front(self) -> Service | None:
        """The service that fronts this one (the topology's ``fronts``), if any."""
        name = self.topology.front_of(self.name)
        return self.peer(name) if name is not None else None


@dataclass(frozen=True)
class Volume:
    """A named directory of a service that outlives its processes (kill, restart); ``down``
    removes it unless ``keep``."""

    name: str
    path: Path
    keep: bool = False

    def prepare(self) -> None:
        """Create it; a volume not kept starts empty (what a crashed run left is removed)."""
        if not self.keep and self.path.exists():
            remove_tree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)


@dataclass(frozen=True)
class InternalLink:
    """Traffic inside a kind (a Patroni member to etcd) that shakedown routes through the
    fault proxy by itself, so partitions and latency reach it without a [links] table.
    ``source`` is a label faults can name (a member), ``to`` the service it reaches."""

    name: str
    source: str
    to: str
    upstream: tuple[str, int] | None = None  # default: the ``to`` service's address
    peers: tuple[str, ...] = ()  # further sources when several use the link (a member's peers)


_SPAWNING_HOOKS = ("start", "_spawn_member", "start_member")
"""The methods of a kind that spawn its processes: each runs in the service's scope, so that
``spawn`` puts the processes in the service's cgroups (and under its faked clock)."""


def _in_scope(method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def scoped(self: Service, *args: Any, **kwargs: Any) -> Any:
        with service_scope(self.ctx.env_id, self.name):
            return method(self, *args, **kwargs)

    return scoped


class Service:
    """Base of every service kind. A kind's class says ``kind="name"`` in its bases (which
    registers it) and implements the hooks."""

    kind: ClassVar[str]
    registry: ClassVar[dict[str, type[Service]]] = {}
    """Every kind's class, by kind name: filled as kind modules are imported."""
    port_count: ClassVar[int] = 1
    runs_as_service_user: ClassVar[bool] = True
    """Servers run as the unprivileged service user when shakedown runs as root; a user's
    own processes (and this virtualenv's Python) as the invoking user."""

    def __init_subclass__(cls, kind: str | None = None, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for hook in _SPAWNING_HOOKS:
            if hook in cls.__dict__:
                setattr(cls, hook, _in_scope(cls.__dict__[hook]))
        if kind is None:
            return
        if kind in Service.registry:
            raise TypeError(f"two service classes for kind {kind!r}: "
                            f"{Service.registry[kind].__qualname__} and {cls.__qualname__}")
        cls.kind = kind
        Service.registry[kind] = cls

    @classmethod
    def class_for(cls, spec: ServiceSpec) -> type[Service]:
        """The class that runs ``spec``: this one, unless a kind runs some of its specs with
        another (``postgres-ha`` with ``citus`` set: a Patroni cluster per Citus group)."""
        return cls

    @classmethod
    def doctor(cls) -> list[DoctorLine]:
        """What ``shakedown doctor`` says about this kind (nothing to say by default)."""
        return []

    @classmethod
    def ports_for(cls, spec: ServiceSpec) -> int:
        """How many ports to allocate: ``port_count``, or more for kinds whose spec says so."""
        return cls.port_count

    def __init__(self, spec: ServiceSpec, ctx: ServiceContext) -> None:
        self.spec = spec
        self.ctx = ctx
        self.processes: list[Spawned] = []
        self.initialized = False  # first start done (data created, init run)
        self.ready_seconds: float | None = None
        self._lock = threading.RLock()

    # -- addresses ---------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.ctx.name

    @property
    def host(self) -> str:
        return LOOPBACK

    @property
    def port(self) -> int:
        return self.ctx.ports[0]

    @property
    def url(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    def exports(self) -> dict[str, str]:
        """Attributes other services may reference as ``{name.attr}``."""
        return {"host": self.host, "port": str(self.port), "url": self.url}

    def exports_through(self, host: str, port: int) -> dict[str, str]:
        """The exports as seen through a proxy at host:port (a link): every address of the
        service's main port is replaced by the proxy's."""
        real = f"{self.host}:{self.port}"
        seen: dict[str, str] = {}
        for key, value in self.exports().items():
            value = value.replace(real, f"{host}:{port}")
            value = value.replace(f"host={self.host} port={self.port}",
                                  f"host={host} port={port}")
            seen[key] = value
        seen.update(host=host, port=str(port))
        return seen

    @property
    def log_path(self) -> Path:
        return self.ctx.log_dir / f"{self.name}.log"

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.processes if p.alive()]

    def log_tail(self, lines: int = 50) -> str:
        return log_tail(self.log_path, lines)

    def internal_links(self) -> list[InternalLink]:
        """The kind's own traffic to put on links (none by default)."""
        return []

    def version(self) -> str | None:
        """The server's version string, for reports; None when not applicable."""
        return None

    def volumes(self) -> dict[str, Volume]:
        """The service's named volumes (none by default): ``down`` removes those not kept."""
        return {}

    # -- lifecycle hooks -------------------------------------------------------------------
    def prepare(self) -> None:
        """First-time setup before the first start (data directory, config files)."""

    def start(self) -> None:
        """Spawn the processes; return without waiting for readiness."""
        raise NotImplementedError

    def wait_ready(self) -> None:
        """Block until the service answers at protocol level, or raise ServiceStartError."""
        raise NotImplementedError

    def after_first_ready(self) -> None:
        """Work done once, the first time the service is ready (passwords, databases, init)."""

    def stop(self) -> None:
        """Stop gracefully, then kill after ``stop_timeout``."""

    # -- persistence -----------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "ports": self.ctx.ports,
            "processes": [p.to_dict() for p in self.processes],
            "initialized": self.initialized,
            "ready_seconds": self.ready_seconds,
            **self.extra_state(),
        }

    def extra_state(self) -> dict[str, Any]:
        return {}

    def restore_state(self, state: Mapping[str, Any]) -> None:
        self.processes = [Spawned.from_dict(p) for p in state.get("processes", [])]
        self.initialized = bool(state.get("initialized"))
        self.ready_seconds = state.get("ready_seconds")

    def status(self) -> str:
        """'running', 'stopped', 'paused' or 'partial' (some processes gone)."""
        if not self.processes:
            return "stopped"
        alive = [p for p in self.processes if p.alive()]
        if not alive:
            return "stopped"
        if any(_is_stopped(p.pid) for p in alive) or cgroup2.is_frozen(self.ctx.env_id,
                                                                        self.name):
            return "paused"
        return "running" if len(alive) == len(self.processes) else "partial"


class SpawnedService(Service):
    """A service made of local processes: stop, kill, pause, resume, start and restart act on
    their process groups; restart keeps the port and the data."""

    stop_signal: ClassVar[int] = signal.SIGTERM

    def stop(self) -> None:
        """Stop each process gracefully (killed after ``stop_timeout``), then whatever is
        left in the service's cgroup2 group: a daemon that escaped its parent's family goes
        with the service, as with a stopped container."""
        with self._lock:
            for proc in reversed(self.processes):
                stop_group(proc, self.stop_signal, self.spec.stop_timeout)
            cgroup2.kill(self.ctx.env_id, self.name)

    def kill(self, role: str | None = None) -> None:
        """SIGKILL the processes with their children; for the whole service, everything in
        its cgroup2 group too (an escaped daemon dies with it, as in a killed container)."""
        if role is None and cgroup2.kill(self.ctx.env_id, self.name):
            cgroup2.thaw(self.ctx.env_id, self.name)  # killed while paused: start unfrozen
        for proc in self._select(role):
            kill_group(proc)

    def pause(self, role: str | None = None) -> None:
        """Freeze every process of the service at once (its cgroup2 group, escaped daemons
        included) where the machine allows; otherwise, and for one ``role``, SIGSTOP the
        processes and all their children. Open connections freeze too."""
        if role is None and cgroup2.freeze(self.ctx.env_id, self.name):
            return
        for proc in self._select(role):
            stop_family(proc)

    def resume(self, role: str | None = None) -> None:
        if role is None:
            cgroup2.thaw(self.ctx.env_id, self.name)
        for proc in self._select(role):
            signal_family(proc, signal.SIGCONT)

    def start_again(self) -> None:
        """Start after a stop or kill, and wait until ready again."""
        with self._lock:
            if any(p.alive() for p in self.processes):
                return
            self.processes = []
            cgroup2.thaw(self.ctx.env_id, self.name)  # a process spawned frozen never starts
            self.start()
        self.wait_ready()

    def restart(self) -> None:
        self.stop()
        self.start_again()

    def roles(self) -> list[str]:
        return [p.role for p in self.processes]

    def _select(self, role: str | None) -> list[Spawned]:
        if role is None:
            return list(self.processes)
        chosen = [p for p in self.processes if p.role == role]
        if not chosen:
            raise FaultError(
                f"service {self.name!r} has no process {role!r}",
                checked=[f"processes of {self.name}: {', '.join(self.roles()) or 'none'}"],
                fix=["name one of the processes listed, or none for all of them"],
            )
        return chosen


class ServerService(SpawnedService):
    """A kind that runs a server binary: declares ``binary`` and gets its lookup, version and
    doctor line; ``await_ready`` runs the kind's readiness probe."""

    binary: ClassVar[Binary]
    product: ClassVar[str] = ""
    """How versions name the server ("Redis 7.0.15"); the kind's name by default."""

    def __init__(self, spec: ServiceSpec, ctx: ServiceContext) -> None:
        super().__init__(spec, ctx)
        self._binary_path: str | None = None

    @property
    def binary_path(self) -> str:
        """The server binary (found once; a missing one fails before anything starts)."""
        if self._binary_path is None:
            self._binary_path = self.binary.find(self.kind, getattr(self.spec, "bin_dir", None))
        return self._binary_path

    def version(self) -> str:
        return f"{self.product or self.kind} {self.binary.version(self.binary_path)}"

    @classmethod
    def doctor(cls) -> list[DoctorLine]:
        try:
            path = cls.binary.find(cls.kind)
        except MissingBinaryError as exc:
            return [DoctorLine(cls.binary.name, False, exc.what, cls.binary.install)]
        return [DoctorLine(cls.binary.name, True, f"{path}: {cls.binary.version_line(path)}")]

    def await_ready(self, probe: Callable[[], bool], check: str, *,
                    interval: float = 0.001, max_interval: float = 0.005,
                    watch: Sequence[Spawned] | None = None) -> None:
        """Wait until ``probe`` answers (it raises NotReady or an error until then), watching
        the processes so that a dead server fails at once; records ``ready_seconds``."""
        self.ready_seconds = wait_ready(probe, service=self.name, check=check,
                                        timeout=self.spec.ready_timeout,
                                        watch=self.processes if watch is None else watch,
                                        interval=interval, max_interval=max_interval)


def _is_stopped(pid: int) -> bool:
    return process_state(pid) == "T"
