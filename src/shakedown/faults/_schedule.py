"""Fault schedules (Jepsen's nemesis generator): faults drawn at random, from a seed, from chosen
families onto the topology's services, members and links, one at a time at random intervals,
each healed after a random while, everything healed at the end even when the block raises.

The plan is a pure function of the seed, the families, the bounds and the candidates (sorted),
so the same seed replays the same faults at the same offsets. Targets are *selectors* resolved
when a step runs: ``leader:db`` is whichever member leads then, ``replica:db#1`` the second
replica then, ``minority:db`` a minority of the cluster's members."""

from __future__ import annotations

import os
import random
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..errors import FaultError, ShakedownError, did_you_mean
from ..history import NEMESIS, History, OpType
from ..services import HasPrimary, Killable, Pausable, Service

if TYPE_CHECKING:
    from ._faults import Faults

SEED_VARIABLE = "SHAKEDOWN_SEED"
"""Set to replay a run's schedules: a schedule without an explicit seed takes it from here."""

FAMILIES: dict[str, str] = {
    "kill": "SIGKILL a service or a member; healed by starting it again",
    "pause": "SIGSTOP a service or a member; healed by SIGCONT",
    "restart": "stop and start a service (instantaneous: nothing to heal)",
    "partition": "cut the topology in two random halves (links that cross them)",
    "isolate": "cut one service or member (the leader, a replica) from all others",
    "latency": "add latency (and jitter) to one link",
    "bandwidth": "limit one link's bandwidth",
    "resource": "throttle a service's CPU to a fraction of a core, or fill its data directory",
    "clock": "skew a service's wall clock by seconds (libfaketime: restarts it)",
}
PROCESS_FAMILIES = ("kill", "pause", "restart")
NETWORK_FAMILIES = ("partition", "isolate", "latency", "bandwidth")
RESOURCE_FAMILIES = ("resource", "clock")
CPU_FRACTIONS = (0.05, 0.5)
CLOCK_OFFSETS = (1.0, 300.0)  # seconds, either way


@dataclass(frozen=True)
class Step:
    """One planned fault: injected at ``at`` seconds from the schedule's start onto the
    selector ``target``, healed ``lasting`` seconds later."""

    index: int
    at: float
    lasting: float
    family: str
    target: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        extra = "".join(f" {k}={v}" for k, v in self.params.items())
        return f"#{self.index} +{self.at:.2f}s {self.family} {self.target}{extra} " \
               f"for {self.lasting:.2f}s"

    def key(self) -> tuple[Any, ...]:
        """What two replays must agree on."""
        return (self.index, round(self.at, 6), round(self.lasting, 6), self.family,
                self.target, tuple(sorted(self.params.items())))


@dataclass(frozen=True)
class Candidates:
    """What a schedule may hit, read from the environment: sorted, so a plan depends on the
    topology's names only (not on dict order or timing)."""

    killable: tuple[str, ...] = ()
    pausable: tuple[str, ...] = ()
    clusters: tuple[str, ...] = ()  # services with a leader (HasPrimary)
    services: tuple[str, ...] = ()  # partition sides: services whose traffic a link carries
    isolatable: tuple[str, ...] = ()  # services a link names directly (not through members)
    links: tuple[str, ...] = ()

    def process_targets(self, names: Sequence[str]) -> list[str]:
        """Whole services, then each cluster's leader and a replica."""
        targets = list(names)
        for cluster in self.clusters:
            if cluster in names:
                targets += [f"leader:{cluster}", f"replica:{cluster}"]
        return targets


@dataclass(frozen=True)
class Bounds:
    """How often and how long: a gap of ``every`` seconds (min, max) between one fault's heal
    and the next fault, each fault ``lasting`` seconds (min, max)."""

    every: tuple[float, float] = (0.5, 2.0)
    lasting: tuple[float, float] = (0.5, 2.0)
    latency_ms: tuple[float, float] = (50.0, 500.0)
    bandwidth_kbps: tuple[float, float] = (16.0, 256.0)

    def check(self) -> None:
        for name in ("every", "lasting", "latency_ms", "bandwidth_kbps"):
            low, high = getattr(self, name)
            if not 0 <= low <= high:
                raise FaultError(f"schedule bound {name}={(low, high)} is not 0 <= min <= max",
                                 fix=[f"give {name} as (min, max) with 0 <= min <= max"])


def plan(seed: int, families: Sequence[str], candidates: Candidates,
         bounds: Bounds = Bounds(), targets: Sequence[str] | None = None) -> Iterator[Step]:
    """The endless sequence of steps a seed gives (pure: no clock, no environment).
    ``targets`` keeps only those selectors (``leader:db``, ``cache``, a link's name...)."""
    rng = random.Random(seed)
    choices = _choices(families, candidates, targets)
    at, index = 0.0, 0
    while True:
        at += rng.uniform(*bounds.every)
        family = rng.choice(sorted(choices))
        target = rng.choice(choices[family])
        lasting = 0.0 if family == "restart" else rng.uniform(*bounds.lasting)
        params = _params(family, rng, bounds, candidates, target)
        yield Step(index, round(at, 6), round(lasting, 6), family, target, params)
        at += lasting
        index += 1


def _choices(families: Sequence[str], c: Candidates,
             only: Sequence[str] | None = None) -> dict[str, list[str]]:
    targets = {
        "kill": c.process_targets(c.killable),
        "pause": c.process_targets(c.pausable),
        "restart": list(c.killable),
        "partition": ["halves"] if len(c.services) >= 2 and c.links else [],
        "isolate": [*c.isolatable, *(f"leader:{n}" for n in c.clusters if n in c.services)],
        "latency": list(c.links),
        "bandwidth": list(c.links),
        "resource": list(c.killable),
        "clock": list(c.killable),
    }
    if only is not None:
        targets = {family: [t for t in found if family == "partition" or t in only]
                   for family, found in targets.items()}
    chosen: dict[str, list[str]] = {}
    for family in families:
        if family not in FAMILIES:
            raise FaultError(f"unknown fault family {family!r}{did_you_mean(family, FAMILIES)}",
                             checked=[f"families: {', '.join(FAMILIES)}"],
                             fix=["name families from the list"])
        if not targets[family]:
            raise FaultError(
                f"fault family {family!r} has nothing to act on in this environment",
                checked=[f"killable: {', '.join(c.killable) or 'none'}",
                         f"pausable: {', '.join(c.pausable) or 'none'}",
                         f"links: {', '.join(c.links) or 'none'}"],
                fix=["leave the family out, or declare [links.NAME] for network families"])
        chosen[family] = targets[family]
    if not chosen:
        raise FaultError("a schedule needs at least one fault family",
                         checked=[f"families: {', '.join(FAMILIES)}"])
    return chosen


def _params(family: str, rng: random.Random, bounds: Bounds, c: Candidates,
            target: str) -> dict[str, Any]:
    if family == "latency":
        return {"ms": round(rng.uniform(*bounds.latency_ms), 1)}
    if family == "bandwidth":
        return {"kbps": round(rng.uniform(*bounds.bandwidth_kbps), 1)}
    if family == "partition":
        side = [s for s in c.services if rng.random() < 0.5] or [c.services[0]]
        if len(side) == len(c.services):
            side = side[:-1]
        return {"side": tuple(side)}
    if family == "resource":
        if rng.random() < 0.5:
            return {"limit": "cpu", "fraction": round(rng.uniform(*CPU_FRACTIONS), 3)}
        return {"limit": "disk"}
    if family == "clock":
        return {"offset": round(rng.choice((-1, 1)) * rng.uniform(*CLOCK_OFFSETS), 3)}
    if target.startswith("replica:"):
        return {"rank": rng.randrange(16)}  # which replica, taken modulo their number then
    return {}


class Nemesis:
    """A running schedule: a thread that injects each step at its offset and heals it after
    its while. A context manager; ``stop()`` ends it and heals what is active."""

    def __init__(self, faults: Faults, history: Callable[[], History | None], seed: int,
                 steps: Iterator[Step], *, duration: float | None = None) -> None:
        self.faults = faults
        self.seed = seed
        self.done: list[Step] = []
        self.errors: list[str] = []
        self._history = history
        self._steps = steps
        self._duration = duration
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"nemesis-{seed}", daemon=True)
        self._began = 0.0

    def start(self) -> Nemesis:
        self._began = time.monotonic()
        # On stderr, so that a failing test's captured output says how to replay it.
        print(f"shakedown: fault schedule with seed {self.seed} (replay it with "
              f"{SEED_VARIABLE}={self.seed})", file=sys.stderr)
        self._record("schedule-start", {"seed": self.seed, "duration": self._duration})
        self._thread.start()
        return self

    def stop(self) -> None:
        """End the schedule and heal everything (always, also when a step failed)."""
        self._stop.set()
        self._thread.join()
        try:
            self.faults.heal()
        finally:
            self._record("schedule-end", {"seed": self.seed, "steps": len(self.done),
                                          "errors": len(self.errors)})

    def wait(self) -> None:
        """Block until a schedule with a ``duration`` has run all of it."""
        self._thread.join()

    def __enter__(self) -> Nemesis:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _run(self) -> None:
        for step in self._steps:
            if self._duration is not None and step.at + step.lasting > self._duration:
                return
            if not self._sleep_until(step.at):
                return
            fault = self._inject(step)
            self.done.append(step)
            finished = self._sleep_until(step.at + step.lasting)
            if fault is not None:
                self._quietly(fault.heal)
            if not finished:
                return

    def _sleep_until(self, offset: float) -> bool:
        """False when the schedule was stopped meanwhile."""
        return not self._stop.wait(max(0.0, self._began + offset - time.monotonic()))

    def _inject(self, step: Step) -> Any:
        try:
            resolved, fault = self._apply(step)
        except (ShakedownError, OSError) as exc:
            self.errors.append(f"{step.describe()}: {exc}")
            self._record("schedule-step", {**_step_value(step), "error": str(exc)[:300]},
                         type_="fail")
            return None
        self._record("schedule-step", {**_step_value(step), "resolved": resolved})
        return fault

    def _apply(self, step: Step) -> tuple[str, Any]:
        faults, family, params = self.faults, step.family, step.params
        if family == "partition":
            side, names = set(params["side"]), faults.service_names()
            labels = faults.partition_labels()
            side_a = sorted(label for label in labels if _service_of(label, names) in side)
            side_b = sorted(label for label in labels if _service_of(label, names) not in side)
            return f"{side_a} | {side_b}", faults.partition(side_a, side_b)
        target = self._resolve(step)
        if family == "kill":
            return target, faults.kill(*_service_and_member(target, faults))
        if family == "pause":
            return target, faults.pause(*_service_and_member(target, faults))
        if family == "restart":
            faults.restart(target)
            return target, None
        if family == "isolate":
            return target, faults.isolate(target)
        if family == "latency":
            return target, faults.latency(target, ms=params["ms"])
        if family == "resource":
            if params["limit"] == "cpu":
                return target, faults.cpu_limit(target, params["fraction"])
            return target, faults.disk_full(target)
        if family == "clock":
            return target, faults.clock(target, params["offset"])
        return target, faults.bandwidth(target, kbps=params["kbps"])

    def _resolve(self, step: Step) -> str:
        """A selector to a name as the cluster is now: ``leader:db`` → ``db1``."""
        kind, _, service = step.target.partition(":")
        if not service:
            return step.target
        cluster = self.faults.service(service)
        if not isinstance(cluster, HasPrimary):
            raise FaultError(f"{service!r} has no leader")
        if kind == "leader":
            leader = cluster.leader()
            if leader is None:
                raise FaultError(f"{service!r} has no leader right now")
            return leader.name
        replicas = sorted(cluster.replicas(), key=lambda m: m.name)
        if not replicas:
            raise FaultError(f"{service!r} has no replica right now")
        return replicas[int(step.params.get("rank", 0)) % len(replicas)].name

    def _quietly(self, action: Callable[[], Any]) -> None:
        try:
            action()
        except (ShakedownError, OSError) as exc:
            self.errors.append(f"heal: {exc}")

    def _record(self, f: str, value: Mapping[str, Any], type_: OpType = "info") -> None:
        history = self._history()
        if history is not None:
            history.append(NEMESIS, type_, f, dict(value))


def _step_value(step: Step) -> dict[str, Any]:
    return {"step": step.index, "at": step.at, "lasting": step.lasting, "family": step.family,
            "target": step.target, **{k: list(v) if isinstance(v, tuple) else v
                                       for k, v in step.params.items()}}


def _service_and_member(target: str, faults: Faults) -> tuple[str, str | None]:
    """``db1`` (a member) → ("db", "db1"); a service's name → (name, None)."""
    if target in faults.service_names():
        return target, None
    for name in faults.service_names():
        if target.startswith(name) and target[len(name):].isdigit():
            return name, target
    raise FaultError(f"no service or member named {target!r}")


def _service_of(label: str, services: Iterable[str]) -> str:
    """The service a partition label belongs to (member ``db0`` → ``db``); itself otherwise."""
    names = set(services)
    if label in names:
        return label
    base = label.rstrip("0123456789")
    return base if base in names else label


def default_seed() -> int:
    """The seed of a schedule given none: ``SHAKEDOWN_SEED`` when set (a replay), else fresh."""
    text = os.environ.get(SEED_VARIABLE, "").strip()
    if text:
        try:
            return int(text)
        except ValueError:
            raise FaultError(f"{SEED_VARIABLE}={text!r} is not an integer",
                             fix=[f"set {SEED_VARIABLE} to the seed a run printed"]) from None
    return secrets.randbelow(2**31)


def candidates_of(services: Mapping[str, Service], links: Iterable[str],
                  labels: Iterable[str]) -> Candidates:
    """What a schedule may act on: ``labels`` are the names the links know as sources and
    ends (services and cluster members)."""
    labels = set(labels)
    return Candidates(
        killable=tuple(sorted(n for n, s in services.items() if isinstance(s, Killable))),
        pausable=tuple(sorted(n for n, s in services.items() if isinstance(s, Pausable))),
        clusters=tuple(sorted(n for n, s in services.items() if isinstance(s, HasPrimary)
                              and isinstance(s, Killable))),
        services=tuple(sorted({_service_of(label, services) for label in labels}
                              & set(services))),
        isolatable=tuple(sorted(labels & set(services))),
        links=tuple(sorted(links)),
    )
