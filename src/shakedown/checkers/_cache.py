"""The stale-read checker for a cache in front of a database: every read (through the cache)
must return a version of its key at least as new as the newest write of that key that was
acknowledged before the read began, and only versions that were written (or the initial one).

The workload writes ``{"key": k, "version": n}`` (``f="cache-write"``; versions grow per key,
as the database assigns them) and reads ``{"key": k}`` returning ``{"key": k, "version": n}`` or a
version of None for a key not found (``f="cache-read"``). Order is the history's: a write
"acknowledged before the read began" has its ``ok`` recorded before the read's ``invoke``."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from shakedown.checkers._histories import HistoryLike, as_history, hashable
from shakedown.checkers._result import Result, invalid, unknown, valid
from shakedown.history import Op

MAX_SHOWN = 10


@dataclass(frozen=True)
class StaleRead:
    """A read that returned ``returned`` for ``key`` when ``newest`` was the newest version
    acknowledged before it began (-1: none)."""

    key: Any
    returned: int | None
    newest: int
    index: int  # the read's invoke in the history
    time: float

    def describe(self) -> str:
        return (f"{self.key!r}: read {self.returned} at {self.time:.3f}s (op {self.index}), "
                f"version {self.newest} was acknowledged before")


def stale_reads(history: HistoryLike, *, initial: Mapping[Any, int] | None = None,
                write_f: str = "cache-write", read_f: str = "cache-read") -> Result:
    """Judge the reads of a cache workload. ``initial``: each key's version before the
    workload (default: a key starts absent, version None). Counts ``reads`` (completed ok),
    ``writes`` (acknowledged), ``stale`` (older than a write acknowledged before the read
    began) and ``unexpected`` (a version no write produced: not acknowledged, and no write of
    that key with an unknown outcome could explain it); invalid iff stale or unexpected,
    unknown when no read completed."""
    starting = {hashable(k): v for k, v in (initial or {}).items()}
    acknowledged: dict[Any, int] = dict(starting)  # newest acknowledged version per key
    written: dict[Any, set[int]] = {k: {v} for k, v in starting.items()}
    in_doubt: set[Any] = set()  # keys with a write whose outcome is unknown
    newest_at: dict[int, dict[Any, int]] = {}  # read invoke index -> acknowledged then
    reads: list[StaleRead] = []
    writes = 0
    pending: dict[int | str, Op] = {}
    for op in as_history(history).ops():
        if op.is_nemesis or op.f not in (write_f, read_f):
            continue
        if op.type == "invoke":
            pending[op.process] = op
            if op.f == read_f:
                newest_at[op.index] = dict(acknowledged)
            continue
        invoke = pending.pop(op.process, None)
        if invoke is None:
            continue
        if op.f == write_f:
            key = hashable(_field(op.value, "key", invoke.value))
            version = _field(op.value, "version", invoke.value)
            if op.type == "ok" and version is not None:
                written.setdefault(key, set()).add(int(version))
                acknowledged[key] = max(acknowledged.get(key, int(version)), int(version))
                writes += 1
            elif op.type == "info":
                in_doubt.add(key)
            continue
        if op.type == "ok" and isinstance(op.value, Mapping):
            key, version = hashable(op.value.get("key")), op.value.get("version")
            newest = newest_at.pop(invoke.index, {}).get(key)
            reads.append(StaleRead(key, None if version is None else int(version),
                                   newest if newest is not None else -1, invoke.index,
                                   invoke.time))
    for invoke in pending.values():  # never completed: outcome unknown
        if invoke.f == write_f:
            in_doubt.add(hashable(_field(invoke.value, "key", None)))
    stale = [r for r in reads if r.newest >= 0 and (r.returned is None
                                                     or r.returned < r.newest)]
    unexpected = [r for r in reads if r.returned is not None and r.key not in in_doubt
                  and r.returned not in written.get(r.key, set())]
    counts = {"reads": len(reads), "writes": writes, "stale": len(stale),
              "unexpected": len(unexpected)}
    if not reads:
        return unknown("no read completed: nothing to judge", counts)
    problems = []
    if stale:
        problems.append(f"{len(stale)} stale read(s): " + "; ".join(
            s.describe() for s in stale[:MAX_SHOWN]))
    if unexpected:
        problems.append(f"{len(unexpected)} read(s) of a version never written: " + "; ".join(
            f"{r.key!r}: {r.returned} (op {r.index})" for r in unexpected[:MAX_SHOWN]))
    details = {"stale": [vars(s) for s in stale[:MAX_SHOWN]],
               "unexpected": [vars(s) for s in unexpected[:MAX_SHOWN]]}
    if problems:
        return invalid("; ".join(problems), counts, **details)
    return valid(f"{len(reads)} reads, none older than a write acknowledged before it began "
                 f"({writes} writes)", counts, **details)


def _field(value: Any, name: str, fallback: Any) -> Any:
    """``value[name]``, else ``fallback[name]`` (a completion may repeat or omit the key)."""
    for source in (value, fallback):
        if isinstance(source, Mapping) and source.get(name) is not None:
            return source[name]
    return None
