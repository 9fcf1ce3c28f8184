"""Per-test timelines cut from an environment's history: client operations (invoke →
completion, by outcome), faults as intervals (fault-start → fault-end), service events, heals
and leader changes. Times are seconds since the test started, so every test's plot starts at 0.

The plugin marks each test on its environment's timeline (nemesis ``f="test"``, events start
and end); everything recorded between the two marks belongs to the test."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..history import NEMESIS, History, Op

PRIMARY_ROLES = frozenset({"primary", "leader", "master"})
SERVICE_EVENTS = ("starting", "ready", "failed", "stopped", "restarted", "gave-up")
POINT_FAULTS = ("start", "restart", "resume")


@dataclass(frozen=True)
class OpSpan:
    """A client operation: invoked at ``start``, completed at ``end`` (None: never completed)."""

    process: int | str
    f: str
    outcome: str  # ok | fail | info | pending
    start: float
    end: float | None
    value: str = ""
    error: str = ""

    @property
    def latency(self) -> float | None:
        return None if self.end is None else self.end - self.start


@dataclass(frozen=True)
class Interval:
    """A fault, active from ``start`` to ``end``; ``open`` when it was not healed in the test."""

    start: float
    end: float
    kind: str
    target: str
    label: str
    open: bool = False


@dataclass(frozen=True)
class Event:
    time: float
    kind: str  # starting | ready | failed | stopped | start | restart | resume | heal | leader
    label: str


@dataclass
class TestTimeline:
    nodeid: str
    environment: str
    started: float  # seconds since the environment started
    duration: float
    ops: list[OpSpan] = field(default_factory=list)
    faults: list[Interval] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def has_workload(self) -> bool:
        return bool(self.ops)

    def counts(self) -> dict[str, int]:
        counts = {"ok": 0, "fail": 0, "info": 0, "pending": 0}
        for op in self.ops:
            counts[op.outcome] += 1
        return counts

    def processes(self) -> list[str]:
        seen = sorted({op.process for op in self.ops},
                      key=lambda p: (0, p, "") if isinstance(p, int) else (1, 0, str(p)))
        return [_process_label(p) for p in seen]


def _process_label(process: int | str) -> str:
    return f"worker {process}" if isinstance(process, int) else str(process)


def timelines(histories: Mapping[str, History]) -> dict[str, TestTimeline]:
    """nodeid → the test's timeline, for every test marked in the histories."""
    result: dict[str, TestTimeline] = {}
    for env, history in histories.items():
        ops = history.ops()
        for nodeid, (start, end) in _windows(ops).items():
            if nodeid not in result:
                result[nodeid] = _cut(nodeid, env, ops, start, end)
    return result


def _windows(ops: list[Op]) -> dict[str, tuple[float, float]]:
    windows: dict[str, tuple[float, float]] = {}
    open_: dict[str, float] = {}
    last = ops[-1].time if ops else 0.0
    for op in ops:
        mark = op.test_mark()
        if mark is None:
            continue
        if mark.event == "start":
            open_[mark.nodeid] = mark.time
        elif mark.nodeid in open_:
            windows.setdefault(mark.nodeid, (open_.pop(mark.nodeid), mark.time))
    for nodeid, start in open_.items():  # the run ended inside the test
        windows.setdefault(nodeid, (start, last))
    return windows


def _cut(nodeid: str, env: str, ops: list[Op], start: float, end: float) -> TestTimeline:
    timeline = TestTimeline(nodeid, env, start, max(0.0, end - start))
    timeline.ops = [span for span in _spans(ops) if start <= span.start <= end]
    timeline.ops = [_shift(s, start) for s in timeline.ops]
    timeline.faults = _faults(ops, start, end)
    timeline.events = _events(ops, start, end)
    return timeline


def _shift(span: OpSpan, origin: float) -> OpSpan:
    return OpSpan(span.process, span.f, span.outcome, span.start - origin,
                  None if span.end is None else span.end - origin, span.value, span.error)


def _spans(ops: list[Op]) -> list[OpSpan]:
    """Pair each client invoke with the next completion of the same process."""
    pending: dict[int | str, Op] = {}
    spans: list[OpSpan] = []
    for op in ops:
        if op.is_nemesis:
            continue
        if op.type == "invoke":
            if op.process in pending:  # invoked again without completing: never completed
                spans.append(_span(pending.pop(op.process), None))
            pending[op.process] = op
        elif op.process in pending:
            spans.append(_span(pending.pop(op.process), op))
    spans.extend(_span(invoke, None) for invoke in pending.values())
    spans.sort(key=lambda s: s.start)
    return spans


def _span(invoke: Op, completion: Op | None) -> OpSpan:
    value = completion.value if completion is not None and completion.type == "ok" \
        else invoke.value
    return OpSpan(
        process=invoke.process,
        f=invoke.f,
        outcome="pending" if completion is None else completion.type,
        start=invoke.time,
        end=None if completion is None else completion.time,
        value=_short(value),
        error=(completion.error or "") if completion is not None else "",
    )


def _short(value: Any, limit: int = 80) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _faults(ops: list[Op], start: float, end: float) -> list[Interval]:
    started: dict[Any, Op] = {}
    intervals: list[Interval] = []
    for op in ops:
        if op.process != NEMESIS or not isinstance(op.value, dict):
            continue
        if op.f == "fault-start":
            started[op.value.get("id", op.index)] = op
        elif op.f == "fault-end":
            begin = started.pop(op.value.get("id", op.index), None)
            if begin is not None and begin.time <= end and op.time >= start:
                intervals.append(_interval(begin, op.time, start, end, closed=True))
    for begin in started.values():
        if begin.time <= end:
            intervals.append(_interval(begin, end, start, end, closed=False))
    intervals.sort(key=lambda i: i.start)
    return intervals


def _interval(begin: Op, until: float, start: float, end: float, *, closed: bool) -> Interval:
    value = begin.value
    kind, target = str(value.get("kind", "fault")), str(value.get("target", ""))
    params = {k: v for k, v in value.items() if k not in ("kind", "target", "id")}
    label = f"{kind} {target}" + "".join(f" {k}={v}" for k, v in params.items()
                                         if v is not None and k != "direction")
    return Interval(max(begin.time, start) - start, min(until, end) - start, kind, target,
                    label, open=not closed)


def _events(ops: list[Op], start: float, end: float) -> list[Event]:
    events: list[Event] = []
    leader: tuple[str, ...] | None = None
    for op in ops:
        if op.time > end:
            break
        if op.process != NEMESIS:
            if op.f == "roles" and op.type in ("ok", "info") and isinstance(op.value, Mapping):
                now = _primaries(op.value)
                if leader is not None and now != leader and op.time >= start:
                    label = ("leader: " + ", ".join(now)) if now else "no leader"
                    events.append(Event(op.time - start, "leader", label))
                leader = now
            continue
        if op.time < start or not isinstance(op.value, dict):
            continue
        target = str(op.value.get("target", ""))
        if op.f == "service" and op.value.get("event") in SERVICE_EVENTS:
            events.append(Event(op.time - start, str(op.value["event"]),
                                f"{target} {op.value['event']}"))
        elif op.f in POINT_FAULTS:
            events.append(Event(op.time - start, op.f, f"{op.f} {target}"))
        elif op.f == "heal" and op.value.get("healed"):
            events.append(Event(op.time - start, "heal", "heal"))
        elif op.f == "leader":
            events.append(Event(op.time - start, "leader", f"leader: {target}"))
    return events


def _primaries(value: Mapping[str, Any]) -> tuple[str, ...]:
    members = []
    for member, state in value.items():
        if isinstance(state, Mapping):
            if str(state.get("role", "")).lower() in PRIMARY_ROLES and state.get("writable", True):
                members.append(str(member))
        elif str(state).lower() in PRIMARY_ROLES:
            members.append(str(member))
    return tuple(sorted(members))
