"""Environments: bring a topology up (independent services in parallel, each after what it
depends on is ready), hand out service handles, keep a state file so other processes (the CLI)
can address it by name, and take it down leaving nothing behind. The process that brings an
environment up owns it; a watchdog reaps it if the owner dies, unless it was detached."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .errors import EnvironmentStateError, FaultError, ServiceStartError, did_you_mean
from .faults import Faults, LinkRoute
from .history import NEMESIS, History
from .names import DEFAULT_STATE_DIR
from .netproxy import ProxyControl, server_command
from .process import (
    EnvRecord,
    PortAllocator,
    Spawned,
    Watchdog,
    adopted,
    become_subreaper,
    cgroups,
    check_reachable,
    current_owner,
    datamount,
    disk_data_root,
    faketime,
    kill_adopted,
    kill_tagged,
    nft,
    reap,
    remove_tree,
    runtime_root,
    service_user,
    spawn,
    start_watchdog,
    stop_group,
    tag_of,
    tagged_processes,
    tmpfs_has_room,
    write_private,
)
from .services import (
    LOOPBACK,
    SERVICE_CLASSES,
    HasLogParts,
    InternalLink,
    Killable,
    Service,
    ServiceContext,
    Supervised,
    create_service,
)
from .store import EnvPaths, StateStore
from .topology import DEFAULT_FILE, Topology, TopologyModel, load_topology

Observer = Callable[[str, str, float | None], None]
"""Called with (service, event, seconds) for events: starting, ready, failed, stopped."""


@dataclass(frozen=True)
class Event:
    time: float  # wall clock
    service: str
    event: str
    seconds: float | None = None


_OWNED: set[str] = set()
"""Ids of the environments this process owns and has not taken down yet."""


class _DependencyFailed(Exception):
    pass


@dataclass(frozen=True)
class Link:
    """A link's proxied address: what its ``from`` service (and a test) connects to in order
    to reach ``to`` through the fault proxy."""

    name: str
    source: str
    to: str
    host: str
    port: int
    url: str


class Environment:
    """A running (or runnable) topology. Use as a context manager, or ``up()`` / ``down()``."""

    def __init__(
        self,
        topology: Topology,
        name: str | None = None,
        *,
        state_root: Path | None = None,
        detach: bool = False,
        observer: Observer | None = None,
    ) -> None:
        self.topology = topology
        self.name = "default" if name is None else name
        StateStore(Path(".")).env(self.name)  # a bad name fails here, before anything exists
        self.state_root = Path(state_root) if state_root else topology.base_dir / DEFAULT_STATE_DIR
        self.detach = detach
        self.observer = observer
        self.env_id = ""
        self.data_dir = Path()
        self.services: dict[str, Service] = {}
        self.events: list[Event] = []
        self.recorded: list[tuple[str, float]] = []
        self.started_at: float | None = None
        self._watchdog: Watchdog | None = None
        self._ports: PortAllocator | None = None
        self._cancelled = threading.Event()
        self._record: EnvRecord | None = None
        self._record_lock = threading.Lock()
        self.link_ports: dict[str, int] = {}
        self.proxy_port: int | None = None
        self._proxy_proc: Spawned | None = None
        self._proxy: ProxyControl | None = None
        self.history: History | None = None
        self._faults: Faults | None = None
        self._owned = False

    # -- construction ----------------------------------------------------------------------
    @classmethod
    def from_file(
        cls, path: str | Path | Sequence[str | Path] = DEFAULT_FILE, name: str | None = None,
        **kwargs: Any,
    ) -> Environment:
        return cls(load_topology(path), name, **kwargs)

    @classmethod
    def attach(cls, name: str | None = None,
               state_root: str | Path = DEFAULT_STATE_DIR) -> Environment:
        """The environment NAME that another process brought up, read from its state file."""
        name = "default" if name is None else name
        state_file = StateStore(Path(state_root)).env(name).state_file
        if not state_file.exists():
            known = StateStore(Path(state_root)).env_names()
            raise EnvironmentStateError(
                f"no environment named {name!r}{did_you_mean(name, known)}",
                checked=[str(state_file.resolve())],
                fix=["start it: shakedown up" + (f" --name {name}" if name != "default" else ""),
                     f"environments here: {', '.join(known) or 'none'}",
                     "or run the command from the directory of its shakedown.toml"],
            )
        return cls._from_state(json.loads(state_file.read_text()), Path(state_root))

    @classmethod
    def _from_state(cls, state: dict[str, Any], state_root: Path) -> Environment:
        model = TopologyModel.model_validate(state["topology"])
        topology = Topology(model=model, paths=tuple(Path(p) for p in state["topology_paths"]))
        env = cls(topology, state["name"], state_root=state_root, detach=state["detached"])
        env.env_id = state["env_id"]
        env.data_dir = Path(state["data_dir"])
        env.started_at = state.get("started_at")
        env._ports = PortAllocator(runtime_root(), env.env_id)
        env.link_ports = {k: int(v) for k, v in state.get("links", {}).items()}
        env._build_services({n: s["ports"] for n, s in state["services"].items()})
        for service_name, service_state in state["services"].items():
            env.services[service_name].restore_state(service_state)
        proxy = state.get("proxy")
        if proxy:
            env.proxy_port = int(proxy["port"])
            env._proxy_proc = Spawned.from_dict(proxy["process"])
        record = runtime_root() / env.env_id / "env.json"
        if record.exists():
            env._record = EnvRecord.load(record)
        if env.state_dir.exists() and env.started_at is not None:
            env.history = History(env.paths.history_file, origin=env.started_at)
        return env

    # -- access ----------------------------------------------------------------------------
    @property
    def paths(self) -> EnvPaths:
        """Where the environment's state, history and logs live (the store's layout)."""
        return StateStore(self.state_root).env(self.name)

    @property
    def state_dir(self) -> Path:
        return self.paths.dir

    @property
    def log_dir(self) -> Path:
        return self.paths.log_dir

    def __getitem__(self, name: str) -> Service:
        try:
            return self.services[name]
        except KeyError:
            raise KeyError(
                f"no service named {name!r}{did_you_mean(name, self.services)}; "
                f"services: {', '.join(self.services)}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self.services)

    def __enter__(self) -> Environment:
        if not self.services:
            self.up()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    def measurements(self) -> dict[str, float]:
        """``SERVICE.ready`` (seconds from the start of a service to its readiness) and every
        duration recorded with :meth:`measure` (the latest value of each name)."""
        ready = {f"{e.service}.ready": e.seconds for e in self.events
                 if e.event == "ready" and e.seconds is not None}
        return {**ready, **dict(self.recorded)}

    @contextlib.contextmanager
    def measure(self, name: str) -> Iterator[None]:
        """Record how long the block takes as measurement ``name`` (checked against
        ``[targets]`` by the pytest plugin)."""
        began = time.perf_counter()
        yield
        self.record(name, time.perf_counter() - began)

    def record(self, name: str, seconds: float) -> None:
        """Record a measurement taken some other way (e.g. a failover time)."""
        self.recorded.append((name, seconds))

    # -- up ----------------------------------------------------------------------------------
    def up(self) -> Environment:
        """Start every service; on any failure stop what started and raise the first error."""
        root = runtime_root()
        reap(root)  # environments whose owner died since the last run
        self._refuse_if_running()
        self.env_id = f"{self.name}-{secrets.token_hex(4)}"
        self.data_dir = self._choose_data_dir(root)
        self.started_at = time.time()
        self._cancelled.clear()
        become_subreaper()  # orphans of any service come back to this process (_kill_adopted)
        self._register(root)
        self._owned = True
        _OWNED.add(self.env_id)
        self.history = History(self.paths.history_file, origin=self.started_at)
        try:
            self._ports = PortAllocator(root, self.env_id)
            self._build_services(self._allocate_ports())
            self._start_proxy()
            self._start_all()
            self.save_state()
        except BaseException:
            self._cancelled.set()
            self._teardown(keep=False)
            raise
        return self

    def _refuse_if_running(self) -> None:
        state_file = self.paths.state_file
        if not state_file.exists():
            return
        try:
            state = json.loads(state_file.read_text())
        except ValueError:
            state = {}
        old_id = state.get("env_id", "")
        if old_id and tagged_processes(old_id):
            raise EnvironmentStateError(
                f"environment {self.name!r} is already running (id {old_id})",
                checked=[f"{state_file}", f"processes tagged {old_id} are alive"],
                fix=[f"take it down first: shakedown down --name {self.name}",
                     "or start this one under another name: --name OTHER"],
            )
        # Stopped or kept earlier: its leftovers make room for the new one.
        if state.get("data_dir"):
            remove_tree(Path(state["data_dir"]))
        remove_tree(self.state_dir)

    def _choose_data_dir(self, root: Path) -> Path:
        wanted = self.topology.model.environment.tmpfs
        on_tmpfs = wanted is True or (wanted == "auto" and tmpfs_has_room())
        if on_tmpfs and os.environ.get("SHAKEDOWN_RUNTIME_DIR") is None:
            return root / self.env_id / "data"
        return (root if on_tmpfs else disk_data_root()) / self.env_id / "data"

    def _register(self, root: Path) -> None:
        pid, started = current_owner()
        record = EnvRecord(env_id=self.env_id, name=self.name,
                           state_dir=str(self.state_dir.resolve()),
                           state_file=str(self.paths.state_file.resolve()),
                           data_dir=str(self.data_dir),
                           owner_pid=pid, owner_started=started, detached=self.detach)
        record_path = record.save(root)
        self._record = record
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_dir.chmod(0o755)
        if not self.detach:
            self._watchdog = start_watchdog(record_path)

    def _allocate_ports(self) -> dict[str, list[int]]:
        assert self._ports is not None
        ports: dict[str, list[int]] = {}
        for name, spec in self.topology.services.items():
            count = SERVICE_CLASSES[spec.kind].ports_for(spec)
            first = [self._ports.claim(spec.port, name)] if spec.port else []
            ports[name] = first + [self._ports.allocate() for _ in range(count - len(first))]
        return ports

    def _build_services(self, ports: Mapping[str, list[int]]) -> None:
        run_as = service_user()
        if self._owned:
            check_reachable(self.data_dir, run_as)
        for name, spec in self.topology.services.items():
            ctx = ServiceContext(
                env_id=self.env_id, name=name, topology=self.topology,
                data_dir=self.data_dir / name, log_dir=self.log_dir, ports=list(ports[name]),
                run_as=run_as if SERVICE_CLASSES[spec.kind].runs_as_service_user else None,
                peer=self.__getitem__, peer_exports=self._exports_for(name),
                link_port=self.link_ports.get,
                volume_dir=StateStore(self.state_root).volumes(self.name) / name,
                history_file=self.paths.history_file, origin=self.started_at,
            )
            self.services[name] = create_service(spec, ctx)

    def _exports_for(self, consumer: str) -> Callable[[str], Mapping[str, str]]:
        """What ``consumer`` sees of another service: through the link's proxy when a link
        goes from ``consumer`` to it, the real address otherwise."""

        def exports(name: str) -> Mapping[str, str]:
            for link_name, link in self.topology.model.links.items():
                if link.source == consumer and link.to == name and link_name in self.link_ports:
                    return self.services[name].exports_through(LOOPBACK,
                                                               self.link_ports[link_name])
            return self.services[name].exports()

        return exports

    # -- links and faults ----------------------------------------------------------------------
    def _internal_links(self) -> list[InternalLink]:
        return [link for s in self.services.values() for link in s.internal_links()]

    def _start_proxy(self) -> None:
        """One fault-proxy process serves every link of the environment: those declared in
        [links] and the kinds' own internal traffic (a Patroni member to etcd)."""
        internal = self._internal_links()
        links = {name: (self.services[link.to].host, self.services[link.to].port)
                 for name, link in self.topology.model.links.items()}
        links.update({link.name: link.upstream or (self.services[link.to].host,
                                                   self.services[link.to].port)
                      for link in internal})
        if not links:
            return
        assert self._ports is not None
        self.proxy_port = self._ports.allocate()
        self._proxy_proc = spawn(
            server_command(self.proxy_port), role="netproxy",
            log_path=self.log_dir / "netproxy.log", env_id=self.env_id)
        self._record_groups([self._proxy_proc.pgid])
        self._emit("netproxy", "starting", None)
        began = time.monotonic()
        proxy = self.proxy()
        assert proxy is not None
        proxy.wait_ready(timeout=10)
        shared = {link.name for link in internal if link.peers}
        for name, (host, upstream_port) in links.items():
            port = self._ports.allocate()
            # A link several sources share tells each connection's source, so a partition
            # can cut some of them only.
            proxy.create(name, port, host, upstream_port, identify=name in shared)
            self.link_ports[name] = port
        self._emit("netproxy", "ready", time.monotonic() - began)

    def proxy(self) -> ProxyControl | None:
        """The control client of the environment's fault proxy (None without links)."""
        if self.proxy_port is None:
            return None
        if self._proxy is None:
            self._proxy = ProxyControl(f"http://{LOOPBACK}:{self.proxy_port}")
        return self._proxy

    def link(self, name: str) -> Link:
        """A link's proxied address, so a test's own client can sit behind its toxics."""
        routes = self.faults.routes
        if name not in routes or name not in self.link_ports:
            raise FaultError(f"no link named {name!r}{did_you_mean(name, routes)}",
                             checked=[f"links: {', '.join(routes) or 'none declared'}"],
                             fix=["declare it: [links.NAME] from = \"a\", to = \"b\""])
        route, port = routes[name], self.link_ports[name]
        url = (self.services[route.to].exports_through(LOOPBACK, port)["url"]
               if route.to in self.services else f"tcp://{LOOPBACK}:{port}")
        return Link(name=name, source=route.source, to=route.to, host=LOOPBACK, port=port,
                    url=url)

    @property
    def faults(self) -> Faults:
        """Kill, pause, restart services; latency, partitions and more on links; heal."""
        if self._faults is None:
            routes = {name: LinkRoute(name, link.source, link.to)
                      for name, link in self.topology.model.links.items()}
            routes.update({link.name: LinkRoute(link.name, link.source, link.to, link.peers)
                           for link in self._internal_links()})
            self._faults = Faults(self.services, routes, self.proxy, lambda: self.history,
                                  on_restart=self._after_restart, env_id=self.env_id)
        return self._faults

    def _after_restart(self) -> None:
        self.record_processes()
        self.save_state()

    def _start_all(self) -> None:
        deps = {name: self.topology.dependencies(name) for name in self.services}
        errors = _run_graph(self.topology.start_order(), deps, self._start_one)
        if errors:
            raise errors[0]

    def _start_one(self, name: str) -> None:
        service = self.services[name]
        if self._cancelled.is_set():
            raise _DependencyFailed(name)
        began = time.monotonic()
        self._emit(name, "starting", None)
        try:
            if isinstance(service, Killable):  # it runs processes that write data
                datamount.mount_limited(service.ctx.data_dir)  # so disk_full can fill it
            service.prepare()
            service.start()
            self.record_processes()
            if self._cancelled.is_set():
                service.stop()
                raise _DependencyFailed(name)
            service.wait_ready()
            service.after_first_ready()
            service.initialized = True
        except ServiceStartError as exc:
            self._emit(name, "failed", time.monotonic() - began)
            spec = self.topology.services[name]
            exc.also_checked(f"topology: [services.{name}] kind = {spec.kind!r}, ready_timeout = "
                             f"{spec.ready_timeout:g}s, stop_timeout = {spec.stop_timeout:g}s")
            raise
        except BaseException:
            self._emit(name, "failed", time.monotonic() - began)
            raise
        self._emit(name, "ready", time.monotonic() - began)

    def _emit(self, service: str, event: str, seconds: float | None) -> None:
        self.events.append(Event(time.time(), service, event, seconds))
        if self.history is not None:
            self.history.append(NEMESIS, "info", "service",
                                {"target": service, "event": event, "seconds": seconds})
        if self.observer is not None:
            self.observer(service, event, seconds)

    # -- state -------------------------------------------------------------------------------
    def record_processes(self) -> None:
        """Add the process groups of every service to the environment record, for the reaper.
        Called after every start (and by faults after a restart)."""
        self._record_groups([p.pgid for s in self.services.values() for p in s.processes])

    def _record_groups(self, pgids: list[int]) -> None:
        if self._record is None:
            return
        with self._record_lock:
            groups = set(pgids)
            if groups - set(self._record.groups):
                self._record.groups = sorted(groups | set(self._record.groups))
                self._record.save(runtime_root())

    def save_state(self) -> None:
        state = {
            "env_id": self.env_id,
            "name": self.name,
            "detached": self.detach,
            "owner_pid": os.getpid(),
            "started_at": self.started_at,
            "data_dir": str(self.data_dir),
            "topology_paths": [str(p) for p in self.topology.paths],
            "topology_digest": self.topology.digest(),
            "topology": self.topology.model.model_dump(mode="json", by_alias=True),
            "services": {name: {**s.to_state(), "view": _view(s)}
                         for name, s in self.services.items()},
            "measurements": self.measurements(),
            "links": self.link_ports,
            "proxy": {"port": self.proxy_port, "process": self._proxy_proc.to_dict()}
            if self._proxy_proc is not None else None,
        }
        path = self.paths.state_file
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, json.dumps(state, indent=2))  # generated passwords: 0600

    # -- down --------------------------------------------------------------------------------
    def down(self, keep: bool = False) -> None:
        """Stop every service (dependents first), then remove data and state unless ``keep``.
        Cleanup always completes; a service that failed to stop is reported afterwards."""
        errors = self._teardown(keep=keep)
        if errors:
            raise errors[0]

    def _teardown(self, keep: bool) -> list[BaseException]:
        if not self.env_id:
            return []
        errors = self._stop_services()
        if self._proxy_proc is not None:
            stop_group(self._proxy_proc, timeout=5)
        if self._proxy is not None:
            self._proxy.close()
        kill_tagged(self.env_id)  # whatever escaped its process group
        self._kill_adopted()
        _OWNED.discard(self.env_id)
        nft.remove_env_tables(self.env_id)  # kernel network faults, before their groups go
        cgroups.remove_env(self.env_id)
        faketime.remove_segments()
        self._remove_volumes(keep_all=keep)
        if keep:
            self.save_state()
        else:
            remove_tree(self.data_dir.parent if self.data_dir.name == "data" else self.data_dir)
            remove_tree(self.state_dir)
        root = runtime_root()
        if self._ports is not None:
            self._ports.release_all()
        remove_tree(root / self.env_id)
        self._stop_watchdog()
        for name in self.services:
            self._emit(name, "stopped", None)
        if self.history is not None:
            self.history.close()
        return errors

    def _kill_adopted(self) -> None:
        """Kill the orphans re-parented to this process (a subreaper) that belong to this
        environment: tagged with it, or untagged (a daemon that cleared its environment) while
        it is the only environment this process owns. Swept until none is left, since
        killing one hands its own children to us."""
        for _ in range(10):
            mine = [pid for pid in adopted()
                    if tag_of(pid) == self.env_id
                    or (tag_of(pid) is None and {self.env_id} >= _OWNED)]
            if not mine:
                return
            kill_adopted(mine)

    def _remove_volumes(self, keep_all: bool) -> None:
        """Volumes not marked ``keep`` end with the environment (all stay with ``--keep``)."""
        if keep_all:
            return
        for service in self.services.values():
            for volume in service.volumes().values():
                if not volume.keep:
                    remove_tree(volume.path)
        root = StateStore(self.state_root).volumes(self.name)
        for directory in [*sorted(root.glob("*"), reverse=True), root, root.parent]:
            with contextlib.suppress(OSError):
                directory.rmdir()  # only when empty: kept volumes stay

    def _stop_services(self) -> list[BaseException]:
        """Stop dependents before what they depend on; independent ones in parallel."""
        dependents: dict[str, set[str]] = {name: set() for name in self.services}
        for name in self.services:
            for dep in self.topology.dependencies(name):
                dependents[dep].add(name)
        order = [n for n in reversed(self.topology.start_order()) if n in self.services]
        return _run_graph(order, dependents, lambda name: self.services[name].stop(),
                          stop_on_failure=False)

    def _stop_watchdog(self) -> None:
        if self._watchdog is not None:
            self._watchdog.close()
            self._watchdog = None


def _run_graph(
    order: Sequence[str], deps: Mapping[str, set[str]], work: Callable[[str], None],
    *, stop_on_failure: bool = True,
) -> list[BaseException]:
    """Run ``work(name)`` for every name, each after its deps are done, independent ones in
    parallel. With ``stop_on_failure`` a name whose dependency failed is not run. Returns the
    errors, root causes first (a skipped dependent does not hide the cause)."""
    futures: dict[str, Future[None]] = {}

    def run(name: str) -> None:
        for dep in deps.get(name, ()):
            if dep in futures and futures[dep].exception() is not None and stop_on_failure:
                raise _DependencyFailed(dep)
        work(name)

    with ThreadPoolExecutor(max_workers=max(1, len(order))) as pool:
        for name in order:
            futures[name] = pool.submit(run, name)
    errors = [f.exception() for f in futures.values() if f.exception() is not None]
    real = [e for e in errors if e is not None and not isinstance(e, _DependencyFailed)]
    return real or [e for e in errors if e is not None]


def _view(service: Service) -> dict[str, Any]:
    """What the CLI's read-only commands show without building services (``cli_state``)."""
    try:
        exports = service.exports()
        url = service.url
    except Exception:  # a cluster between leaders: its addresses are read again next save
        exports, url = {}, ""
    parts = service.log_paths() if isinstance(service, HasLogParts) else {}
    supervisor = service.restart_status_path if isinstance(service, Supervised) else None
    return {"url": url, "exports": exports, "log_path": str(service.log_path),
            "log_parts": {key: str(path) for key, path in parts.items()},
            "restart_status": str(supervisor) if supervisor is not None else None}
