"""The ``Faults`` object behind ``env.faults`` and ``shakedown fault``."""

from __future__ import annotations

import contextlib
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Literal

from ..errors import FaultError, did_you_mean
from ..history import NEMESIS, History
from ..netproxy import TOXIC_TYPES, ProxyControl
from ..services import AwsFaultable, Killable, Pausable, Restartable, Service
from . import _resources as resources
from ._clock import reset as reset_clock
from ._clock import set_clock
from ._kernel import Cut, KernelNet
from ._schedule import Bounds, Candidates, Nemesis, candidates_of, default_seed, plan

Direction = Literal["upstream", "downstream", "both"]
DIRECTIONS: tuple[str, ...] = ("upstream", "downstream", "both")
_ids = itertools.count(1)
_LIFTED_AT_HEAL = ("memory_limit", "cpu_limit", "pids_limit", "disk_full", "clock")


@dataclass(frozen=True)
class LinkRoute:
    """A link as faults see it: traffic from ``source`` to ``to`` through proxy ``name``."""

    name: str
    source: str
    to: str
    peers: tuple[str, ...] = ()  # further sources sharing the link

    @property
    def sources(self) -> set[str]:
        return {self.source, *self.peers}


@dataclass
class Fault:
    """One active fault. A context manager: the block runs with the fault, which is healed on
    exit even when the block raises."""

    id: int
    kind: str
    target: str
    params: dict[str, Any]
    undo: Callable[[], None] = field(repr=False)
    faults: Faults = field(repr=False)
    healed: bool = False

    def heal(self) -> None:
        self.faults._heal_one(self)

    def __enter__(self) -> Fault:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.heal()

    def describe(self) -> str:
        params = ", ".join(f"{k}={v}" for k, v in self.params.items())
        return f"{self.kind} {self.target}" + (f" ({params})" if params else "")


class Faults:
    """Inject and heal faults in one environment."""

    def __init__(
        self,
        services: Mapping[str, Service],
        links: Mapping[str, LinkRoute],
        proxy: Callable[[], ProxyControl | None],
        history: Callable[[], History | None],
        on_restart: Callable[[], None] = lambda: None,
        env_id: str = "",
    ) -> None:
        self._services = services
        self._kernel = KernelNet(env_id, services) if env_id else None
        self._links = links
        self.routes = links
        self._proxy = proxy
        self._history = history
        self._on_restart = on_restart
        self._active: list[Fault] = []
        self._lock = threading.RLock()
        self.used = False

    # -- process faults ------------------------------------------------------------------------
    def kill(self, service: str, process: str | None = None) -> Fault:
        """SIGKILL the service's processes (or the one named ``process``) with their children."""
        target = self._killable(service, "kill")
        with self._injecting("kill", service, {"process": process} if process else {},
                             undo=lambda: self._start(service)) as fault:
            target.kill(process)
        return fault

    def stop(self, service: str) -> Fault:
        """Stop gracefully (as at ``down``), keeping data and port."""
        self._killable(service, "stop")
        with self._injecting("stop", service, {}, undo=lambda: self._start(service)) as fault:
            self._services[service].stop()
        return fault

    def start(self, service: str) -> None:
        """Start a stopped or killed service again and wait until it is ready."""
        self._killable(service, "start")
        self._record("start", service, {})
        self._start(service)
        self._forget(lambda f: f.kind in ("kill", "stop") and f.target == service)

    def restart(self, service: str) -> None:
        """Stop, start, wait until ready: same port, same data."""
        target = self._killable(service, "restart")
        self._record("restart", service, {})
        target.restart()
        self._on_restart()

    def pause(self, service: str, process: str | None = None) -> Fault:
        """SIGSTOP the service (and its children): clients hang until ``resume``."""
        target = self._pausable(service)
        with self._injecting("pause", service, {"process": process} if process else {},
                             undo=lambda: target.resume(process)) as fault:
            target.pause(process)
        return fault

    def resume(self, service: str, process: str | None = None) -> None:
        self._pausable(service).resume(process)
        self._record("resume", service, {"process": process} if process else {})
        self._forget(lambda f: f.kind == "pause" and f.target == service)

    def _start(self, service: str) -> None:
        target = self._services[service]
        if not isinstance(target, Restartable):
            raise FaultError(f"service {service!r} ({target.kind}) cannot be started again")
        target.start_again()
        self._on_restart()

    # -- network faults --------------------------------------------------------------------------
    def toxic(self, link: str, type: str, direction: Direction = "downstream",
              toxicity: float = 1.0, *, sources: Iterable[str] = (),
              **attributes: float) -> Fault:
        """Add a toxic of ``type`` to a link, in one direction or both. ``sources``: on a
        link several sources share (a Patroni member's inbound link), act only on the
        connections of these."""
        fault_id, undo, params = self._toxic(link, type, direction, toxicity,
                                             tuple(sources), attributes)
        return self._add(type, link, params, undo=undo, fault_id=fault_id)

    def _toxic(self, link: str, type: str, direction: Direction, toxicity: float,
               sources: tuple[str, ...], attributes: Mapping[str, float],
               ) -> tuple[int, Callable[[], None], dict[str, Any]]:
        """Add the toxics (all or nothing) without recording a fault: returns its id, how to
        remove them and the parameters to record."""
        route = self._route(link)
        proxy = self._require_proxy()
        if type not in TOXIC_TYPES:
            raise FaultError(f"unknown toxic {type!r}{did_you_mean(type, TOXIC_TYPES)}",
                             checked=[f"toxics: {', '.join(TOXIC_TYPES)}"],
                             fix=["use one of the toxics listed"])
        if direction not in DIRECTIONS:
            hint = did_you_mean(direction, DIRECTIONS)
            raise FaultError(f"unknown direction {direction!r}{hint}",
                             checked=[f"directions: {', '.join(DIRECTIONS)}"])
        streams = ["upstream", "downstream"] if direction == "both" or type == "down" \
            else [direction]
        fault_id = next(_ids)
        added: list[str] = []
        try:
            for stream in streams:
                name = f"{type}-{stream}-{fault_id}"
                added.append(proxy.add_toxic(route.name, type, stream, toxicity, name=name,
                                             sources=sources, **attributes))
                if type == "down":
                    break  # down acts on the whole link
        except FaultError:
            for name in added:  # all or nothing: a bad parameter changes nothing
                proxy.remove_toxic(route.name, name)
            raise

        def undo() -> None:
            for name in added:
                proxy.remove_toxic(route.name, name)

        params: dict[str, Any] = {"direction": direction, **attributes}
        if toxicity != 1.0:
            params["toxicity"] = toxicity
        if sources:
            params["sources"] = list(sources)
        return fault_id, undo, params

    def latency(self, link: str, ms: float, jitter: float = 0, *,
                direction: Direction = "downstream", toxicity: float = 1.0) -> Fault:
        return self.toxic(link, "latency", direction, toxicity, latency_ms=ms, jitter_ms=jitter)

    def bandwidth(self, link: str, kbps: float, *, direction: Direction = "downstream",
                  toxicity: float = 1.0) -> Fault:
        return self.toxic(link, "bandwidth", direction, toxicity, rate_kbps=kbps)

    def timeout(self, link: str, ms: float = 0, *, direction: Direction = "both",
                toxicity: float = 1.0) -> Fault:
        return self.toxic(link, "timeout", direction, toxicity, timeout_ms=ms)

    def reset_peer(self, link: str, ms: float = 0, *, direction: Direction = "downstream",
                   toxicity: float = 1.0) -> Fault:
        return self.toxic(link, "reset_peer", direction, toxicity, timeout_ms=ms)

    def slicer(self, link: str, average_size: int = 64, size_variation: int = 32,
               delay_us: int = 100, *, direction: Direction = "downstream") -> Fault:
        return self.toxic(link, "slicer", direction, average_size=average_size,
                          size_variation=size_variation, delay_us=delay_us)

    def limit_data(self, link: str, bytes: int, *, direction: Direction = "downstream") -> Fault:
        return self.toxic(link, "limit_data", direction, bytes=bytes)

    def down(self, link: str) -> Fault:
        """Refuse new connections and drop open ones on the link."""
        return self.toxic(link, "down", "both")

    def partition(self, group_a: Iterable[str], group_b: Iterable[str]) -> Fault:
        """Cut the two groups apart, both ways: data stops flowing (like packets dropped), so
        clients time out rather than see a clean error, and open connections stall. Declared
        links that cross are cut in the fault proxy; any other pair of services, in the kernel
        (no link needed, open connections included)."""
        side_a, side_b = set(group_a), set(group_b)
        for name in (side_a | side_b) - self._labels():  # a label may be a member: db0
            self._service(name)
        crossing = [r for r in self._links.values()
                    if (r.sources & side_a and r.to in side_b)
                    or (r.sources & side_b and r.to in side_a)]
        cuts = [c for a, b in self._unlinked_pairs(side_a, side_b)
                for c in (Cut(a, b), Cut(b, a))]
        if not crossing and not cuts:
            declared = ", ".join(f"{r.source}->{r.to}" for r in self._links.values())
            raise FaultError(
                f"no link crosses {sorted(side_a)} | {sorted(side_b)}: nothing to cut",
                checked=[f"links: {declared or 'none'}", "kernel network faults: "
                         + self._kernel_state()],
                fix=["declare [links.NAME] from/to for the traffic to cut",
                     "or run as root with nftables installed for kernel faults"])
        # The cut links are parts of this one fault: recorded once, as the partition.
        parts: list[Callable[[], None]] = []
        try:
            for r in crossing:
                parts.append(self._toxic(r.name, "timeout", "both", 1.0,
                                         _cut_sources(r, side_a, side_b),
                                         {"timeout_ms": 0})[1])
            if cuts:
                parts.append(self._kernel_cut(cuts))
        except BaseException:
            for undo_part in parts:
                undo_part()
            raise

        def undo() -> None:
            for undo_part in parts:
                undo_part()

        params: dict[str, Any] = {"links": [r.name for r in crossing]}
        if cuts:
            params["kernel"] = sorted({f"{c.sender}->{c.receiver}" for c in cuts})
        return self._add("partition", f"{sorted(side_a)} | {sorted(side_b)}", params, undo=undo)

    def cut(self, senders: Iterable[str], receivers: Iterable[str]) -> Fault:
        """One way, in the kernel: what ``senders`` send to ``receivers`` is dropped, what
        comes back still flows (an asymmetric partition)."""
        return self._kernel_fault("cut", senders, receivers, None)

    def loss(self, group_a: Iterable[str], group_b: Iterable[str], percent: float,
             direction: Literal["both", "a_to_b", "b_to_a"] = "both") -> Fault:
        """Drop ``percent`` of the packets between the groups, in the kernel: TCP's own
        retransmissions are what the services see."""
        if not 0 < percent <= 100:
            raise FaultError(f"loss of {percent}% is out of range",
                             fix=["give a percentage in (0, 100]"])
        a, b = list(group_a), list(group_b)
        if direction == "b_to_a":
            a, b = b, a
        return self._kernel_fault("loss", a, b, percent, both=direction == "both")

    def _kernel_fault(self, kind: str, senders: Iterable[str], receivers: Iterable[str],
                      percent: float | None, both: bool = False) -> Fault:
        side_a, side_b = set(senders), set(receivers)
        for name in side_a | side_b:
            self._service(name)
        pairs = [(a, b) for a in sorted(side_a) for b in sorted(side_b) if a != b]
        cuts = [Cut(a, b, percent) for a, b in pairs]
        if both:
            cuts += [Cut(b, a, percent) for a, b in pairs]
        if not cuts:
            raise FaultError(f"{kind}: no pair of distinct services in {sorted(side_a)} and "
                             f"{sorted(side_b)}", fix=["name two different services"])
        undo = self._kernel_cut(cuts)
        params: dict[str, Any] = {"kernel": sorted({f"{c.sender}->{c.receiver}" for c in cuts})}
        if percent is not None:
            params["percent"] = percent
        return self._add(kind, f"{sorted(side_a)} | {sorted(side_b)}", params, undo=undo)

    def _kernel_cut(self, cuts: list[Cut]) -> Callable[[], None]:
        if self._kernel is None:
            raise FaultError("kernel network faults need an environment that is up",
                             fix=["bring the environment up first"])
        self._kernel.require(f"cutting {', '.join(f'{c.sender}->{c.receiver}' for c in cuts)}")
        table = self._kernel.apply(cuts)
        kernel = self._kernel
        return lambda: kernel.remove(table)

    def _unlinked_pairs(self, side_a: set[str], side_b: set[str]) -> list[tuple[str, str]]:
        """Pairs of services (not members) across the sides with no declared link between
        them, when the kernel path is there: their traffic is cut in the kernel."""
        if self._kernel is None or not self._kernel.available():
            return []
        linked = {frozenset((s, r.to)) for r in self._links.values() for s in r.sources}
        return [(a, b) for a in sorted(side_a & set(self._services))
                for b in sorted(side_b & set(self._services))
                if a != b and frozenset((a, b)) not in linked]

    def _kernel_state(self) -> str:
        if self._kernel is None:
            return "no environment"
        from ._kernel import offered

        usable, reason, _ = offered()
        return "available" if usable else f"unavailable ({reason})"

    def isolate(self, service: str) -> Fault:
        """Partition one service, or one member of a cluster (``db0``), from every other
        service and member."""
        names = set(self._services) | self._labels()
        if service not in names:
            self._service(service)  # raises: no such service, with a suggestion
        return self.partition([service], sorted(names - {service}))

    def _labels(self) -> set[str]:
        """Every name the links know as a source or an end (services and cluster members)."""
        return {s for r in self._links.values() for s in (*r.sources, r.to)}

    # -- AWS faults ------------------------------------------------------------------------------
    def aws_error(self, target: str, service: str, operation: str, error: str,
                  probability: float = 1.0, status: int | None = None,
                  message: str | None = None) -> Fault:
        """Make an AWS operation of the emulator fail as AWS would (status, error body), e.g.
        throttled DynamoDB: ``aws_error("aws", "dynamodb", "PutItem",
        "ProvisionedThroughputExceededException", probability=0.5)``."""
        emulator = self._aws(target)
        rule = emulator.add_error_rule(service, operation, error, probability, status, message)
        params = {"service": service, "operation": operation, "error": error,
                  "probability": probability}
        return self._add("aws_error", target, params, undo=lambda: emulator.remove_rule(rule))

    def aws_latency(self, target: str, service: str, operation: str, ms: float,
                    probability: float = 1.0) -> Fault:
        """Delay an AWS operation of the emulator by ``ms``."""
        emulator = self._aws(target)
        rule = emulator.add_latency_rule(service, operation, ms, probability)
        params = {"service": service, "operation": operation, "ms": ms,
                  "probability": probability}
        return self._add("aws_latency", target, params, undo=lambda: emulator.remove_rule(rule))

    def _aws(self, name: str) -> AwsFaultable:
        service = self._service(name)
        if not isinstance(service, AwsFaultable):
            raise FaultError(f"service {name!r} ({service.kind}) is not an AWS emulator",
                             fix=["name a service of kind 'aws'"])
        return service

    # -- resource faults ---------------------------------------------------------------------
    def memory_limit(self, service: str, bytes: int) -> Fault:
        """Cap the service's memory (cgroup): the kernel reclaims, then OOM-kills a process
        that grows past it; the kills are recorded when the fault heals."""
        return self._resource("memory_limit", service, lambda s: resources.memory_limit(s, bytes))

    def cpu_limit(self, service: str, fraction: float) -> Fault:
        """Throttle the service to ``fraction`` of one core (CFS quota)."""
        return self._resource("cpu_limit", service, lambda s: resources.cpu_limit(s, fraction))

    def pids_limit(self, service: str, count: int) -> Fault:
        """Allow the service at most ``count`` processes and threads: fork fails beyond."""
        return self._resource("pids_limit", service, lambda s: resources.pids_limit(s, count))

    def disk_full(self, service: str) -> Fault:
        """Fill the service's data directory: writes that need space fail with ENOSPC;
        healing gives it back its size."""
        return self._resource("disk_full", service, resources.disk_full)

    def _resource(self, kind: str, service: str,
                  apply: Callable[[Service], resources.Applied]) -> Fault:
        applied = apply(self._killable_service(service, kind))

        def undo() -> None:
            observed = applied.observe()
            applied.undo()
            if observed:
                self._record("observed", service, {"kind": kind, **observed})

        return self._add(kind, service, applied.params, undo=undo)

    # -- clock faults --------------------------------------------------------------------------
    def clock(self, service: str, offset: float = 0.0, *, rate: float | None = None) -> Fault:
        """Move the service's wall clock ``offset`` seconds (ahead when positive) and, with
        ``rate``, make it run that fast (libfaketime). Set again to jump it live."""
        target = self._killable_service(service, "clock")
        self._forget(lambda f: f.kind == "clock" and f.target == service)  # replaced by this

        def record(f: str, value: dict[str, Any]) -> None:
            self._record(f, service, value)

        params, undo = set_clock(target, offset, rate, record)
        return self._add("clock", service, params, undo=undo)

    def _killable_service(self, name: str, action: str) -> Service:
        self._killable(name, action)
        return self._services[name]

    # -- schedules -------------------------------------------------------------------------------
    def schedule(self, families: Iterable[str] = ("kill", "pause", "partition"), *,
                 seed: int | None = None, duration: float | None = None,
                 every: tuple[float, float] = (0.5, 2.0),
                 lasting: tuple[float, float] = (0.5, 2.0),
                 latency_ms: tuple[float, float] = (50.0, 500.0),
                 bandwidth_kbps: tuple[float, float] = (16.0, 256.0),
                 targets: Iterable[str] | None = None) -> Nemesis:
        """Start a random, reproducible fault schedule (a context manager): one fault at a
        time from ``families`` onto this environment's services, members and links, a gap of
        ``every`` seconds between them, each healed after ``lasting`` seconds; everything healed
        when the block ends. ``targets`` keeps only those selectors (``leader:db``,
        ``replica:db``, a service, a link). The same ``seed`` (default: ``SHAKEDOWN_SEED`` or a
        fresh one, stored in the history) replays the same faults at the same offsets."""
        bounds = Bounds(every, lasting, latency_ms, bandwidth_kbps)
        bounds.check()
        chosen = seed if seed is not None else default_seed()
        steps = plan(chosen, tuple(families), self.candidates(), bounds,
                     None if targets is None else tuple(targets))
        first = next(steps)  # validates the families against the candidates now
        return Nemesis(self, self._history, chosen, itertools.chain([first], steps),
                       duration=duration).start()

    def candidates(self) -> Candidates:
        """What a schedule may act on in this environment."""
        return candidates_of(self._services, self._links, self._labels())

    def service_names(self) -> list[str]:
        return list(self._services)

    def service(self, name: str) -> Service:
        """A service by name (raises a FaultError with a suggestion)."""
        return self._service(name)

    def partition_labels(self) -> set[str]:
        """Every name a partition side may hold: services and cluster members."""
        return set(self._services) | self._labels()

    # -- heal and bookkeeping ----------------------------------------------------------------
    def heal(self) -> None:
        """Remove every toxic, resume paused services, start killed or stopped ones."""
        with self._lock:
            active, self._active = list(self._active), []
        self._lift_limits(active)  # first: a service restarted below must not meet them
        proxy = self._proxy()
        if proxy is not None:
            proxy.reset()
        if self._kernel is not None:
            self._kernel.remove_all()  # also cuts made by another process (`shakedown fault`)
        for service in self._services.values():
            if isinstance(service, AwsFaultable) and service.status() == "running":
                service.clear_rules()
        for service in self._services.values():
            if isinstance(service, Pausable) and service.status() == "paused":
                service.resume()
        for name, service in self._services.items():
            if isinstance(service, Restartable) and service.status() in ("stopped", "partial"):
                self._start(name)
        for fault in active:
            fault.healed = True
            self._record_end(fault)
        self._record("heal", "*", {"healed": [f.describe() for f in active]})

    def _lift_limits(self, active: Iterable[Fault]) -> None:
        for fault in active:
            if fault.kind in _LIFTED_AT_HEAL:
                with contextlib.suppress(OSError):  # its group went with its processes
                    fault.undo()  # records what was observed (OOM kills...)
        for service in self._services.values():
            if isinstance(service, Killable):  # also what another process (the CLI) set
                with contextlib.suppress(OSError):
                    resources.reset(service)
                    reset_clock(service)

    def active(self) -> list[Fault]:
        """Faults injected through this object and not healed yet."""
        with self._lock:
            return list(self._active)

    def current(self) -> list[str]:
        """What is wrong right now, read from the proxy and the processes (so it also shows
        faults injected by another process, e.g. ``shakedown fault`` in a terminal)."""
        lines = []
        proxy = self._proxy()
        if proxy is not None:
            for name, info in sorted(proxy.proxies().items()):
                for toxic in info["toxics"]:
                    attrs = ", ".join(f"{k}={v:g}" for k, v in toxic["attributes"].items())
                    lines.append(f"link {name}: {toxic['type']} {toxic['stream']}"
                                 + (f" ({attrs})" if attrs else "")
                                 + (f" toxicity={toxic['toxicity']:g}"
                                    if toxic["toxicity"] != 1 else ""))
        for name, service in self._services.items():
            status = service.status()
            if status in ("paused", "stopped", "partial") and isinstance(service, Killable):
                lines.append(f"service {name}: {status}")
            if isinstance(service, AwsFaultable) and status == "running":
                lines.extend(f"aws {name}: {rule}" for rule in service.rules())
        return lines

    def _heal_one(self, fault: Fault) -> None:
        with self._lock:
            if fault.healed:
                return
            fault.healed = True
            if fault in self._active:
                self._active.remove(fault)
        fault.undo()
        self._record_end(fault)

    def _add(self, kind: str, target: str, params: dict[str, Any], *,
             undo: Callable[[], None], fault_id: int | None = None) -> Fault:
        """Register a fault (recorded as started now)."""
        fault = Fault(fault_id or next(_ids), kind, target, params, undo, self)
        with self._lock:
            self._active.append(fault)
        self.used = True
        self._record("fault-start", target, {"id": fault.id, "kind": kind, **params})
        return fault

    @contextmanager
    def _injecting(self, kind: str, target: str, params: dict[str, Any], *,
                   undo: Callable[[], None]) -> Iterator[Fault]:
        """A fault recorded as started *before* the block injects it: a killed process may
        be gone well before ``kill`` returns, and clients fail from that moment. When the
        injection raises, the fault is recorded as ended at once and forgotten."""
        fault = self._add(kind, target, params, undo=undo)
        try:
            yield fault
        except BaseException:
            self._forget(lambda f: f is fault)
            raise

    def _forget(self, match: Callable[[Fault], bool]) -> None:
        with self._lock:
            gone = [f for f in self._active if match(f)]
            self._active = [f for f in self._active if not match(f)]
        for fault in gone:
            fault.healed = True
            self._record_end(fault)

    def _record_end(self, fault: Fault) -> None:
        self._record("fault-end", fault.target, {"id": fault.id, "kind": fault.kind})

    def _record(self, f: str, target: str, params: Mapping[str, Any]) -> None:
        self.used = True
        history = self._history()
        if history is not None:
            history.append(NEMESIS, "info", f, {"target": target, **params})

    # -- lookups ---------------------------------------------------------------------------------
    def _service(self, name: str) -> Service:
        if name not in self._services:
            raise FaultError(f"no service named {name!r}{did_you_mean(name, self._services)}",
                             checked=[f"services: {', '.join(self._services)}"],
                             fix=["name one of the services listed"])
        return self._services[name]

    def _killable(self, name: str, action: str) -> Killable:
        service = self._service(name)
        if not isinstance(service, Killable):
            raise FaultError(
                f"service {name!r} ({service.kind}) does not support {action}: shakedown runs "
                "no process for it", fix=["inject network faults on a link to it instead"])
        return service

    def _pausable(self, name: str) -> Pausable:
        service = self._service(name)
        if not isinstance(service, Pausable):
            raise FaultError(f"service {name!r} ({service.kind}) does not support pause",
                             fix=["inject network faults on a link to it instead"])
        return service

    def _route(self, link: str) -> LinkRoute:
        if link not in self._links:
            raise FaultError(f"no link named {link!r}{did_you_mean(link, self._links)}",
                             checked=[f"links: {', '.join(self._links) or 'none declared'}"],
                             fix=["declare it: [links.NAME] from = \"a\", to = \"b\""])
        return self._links[link]

    def _require_proxy(self) -> ProxyControl:
        proxy = self._proxy()
        if proxy is None:
            raise FaultError("the environment has no fault proxy running",
                             fix=["declare a [links.NAME] table so shakedown starts one"])
        return proxy


def _cut_sources(route: LinkRoute, side_a: set[str], side_b: set[str]) -> tuple[str, ...]:
    """Which of a link's sources a partition cuts: those on the other side from where it
    leads. Empty (the whole link) when that is all of them; a link's own source and peers on
    the same side as its end, or on neither side, keep their traffic."""
    across = side_b if route.to in side_a else side_a
    cut = route.sources & across
    return () if cut == route.sources else tuple(sorted(cut))
