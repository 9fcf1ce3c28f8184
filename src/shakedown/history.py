"""Operation histories (Jepsen's model): each operation is recorded as an ``invoke`` followed by
its completion ``ok``, ``fail`` or ``info`` (outcome unknown), with monotonic times; faults
and service events are recorded by the ``nemesis`` process in the same history. A history is
stored as JSON lines, one operation a line, so it can be streamed while a run goes on and
re-read offline by checkers and reports."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

OpType = Literal["invoke", "ok", "fail", "info"]
OP_TYPES: tuple[OpType, ...] = ("invoke", "ok", "fail", "info")
NEMESIS = "nemesis"
FINAL = "final"
"""The process that records final reads (``f="final-read"``, ``f="final-balances"``...), so a
stored history holds everything its checkers need and ``shakedown check`` can re-run them."""


@dataclass(frozen=True)
class Op:
    """One entry of a history.

    ``time`` is seconds since the history started (monotonic clock); ``process`` is the worker
    that performed it (an int for clients, ``"nemesis"`` for faults and service events).
    """

    process: int | str
    type: OpType
    f: str
    value: Any = None
    time: float = 0.0
    index: int = -1
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        data = asdict(self)
        if not data["extra"]:
            del data["extra"]
        if data["error"] is None:
            del data["error"]
        return json.dumps(data, default=str, separators=(",", ":"))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Op:
        if data.get("type") not in OP_TYPES:
            raise ValueError(f"operation type must be one of {OP_TYPES}, got {data.get('type')!r}")
        return cls(
            process=data["process"],
            type=data["type"],
            f=data["f"],
            value=data.get("value"),
            time=float(data.get("time", 0.0)),
            index=int(data.get("index", -1)),
            error=data.get("error"),
            extra=dict(data.get("extra") or {}),
        )

    @property
    def is_nemesis(self) -> bool:
        return self.process == NEMESIS

    def test_mark(self) -> TestMark | None:
        """The pytest plugin's mark of a test starting or ending, if this op is one."""
        if self.process != NEMESIS or self.f != TEST_MARK or not isinstance(self.value, dict):
            return None
        event = self.value.get("event")
        if event not in ("start", "end"):
            return None
        return TestMark(nodeid=str(self.value.get("target")), event=event, time=self.time)


TEST_MARK = "test"
"""``f`` of the marks the pytest plugin writes when a test starts and ends, so that a stored
history can be cut per test (reports, ``shakedown check``)."""


@dataclass(frozen=True)
class TestMark:
    nodeid: str
    event: Literal["start", "end"]
    time: float


def mark_test(history: History, nodeid: str, event: Literal["start", "end"]) -> None:
    """Write a test mark (the one writer of the format ``Op.test_mark`` reads)."""
    history.append(NEMESIS, "info", TEST_MARK, {"target": nodeid, "event": event})


class History:
    """An append-only, thread-safe list of operations, optionally mirrored to a JSONL file.

    Times are taken from one monotonic origin so that client operations, faults and service
    events recorded by different threads can be placed on one timeline. ``wall_origin`` keeps
    the wall-clock time of that origin so reports can show real times.
    """

    def __init__(
        self, path: Path | None = None, ops: Iterable[Op] = (), origin: float | None = None
    ) -> None:
        """``origin``: the wall-clock time that is time zero, so that several processes (a
        test and ``shakedown fault`` from a terminal) append to one timeline; default now."""
        self._lock = threading.Lock()
        self._ops: list[Op] = list(ops)
        self.wall_origin = time.time() if origin is None else origin
        # Monotonic within the process, anchored once to the shared wall-clock origin.
        self._origin = time.monotonic() - (time.time() - self.wall_origin)
        self.path = path
        self._file = path.open("a", encoding="utf-8") if path is not None else None

    def now(self) -> float:
        return time.monotonic() - self._origin

    def append(
        self,
        process: int | str,
        type: OpType,
        f: str,
        value: Any = None,
        *,
        error: str | None = None,
        at: float | None = None,
        **extra: Any,
    ) -> Op:
        """Record an operation now (or at ``at`` seconds since the origin) and return it."""
        with self._lock:
            op = Op(
                process=process,
                type=type,
                f=f,
                value=value,
                time=self.now() if at is None else at,
                index=len(self._ops),
                error=error,
                extra=extra,
            )
            self._ops.append(op)
            if self._file is not None:
                self._file.write(op.to_json() + "\n")
                self._file.flush()
        return op

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None

    def __iter__(self) -> Iterator[Op]:
        with self._lock:
            return iter(list(self._ops))

    def __len__(self) -> int:
        return len(self._ops)

    def ops(self) -> list[Op]:
        with self._lock:
            return list(self._ops)

    @classmethod
    def load(cls, path: Path) -> History:
        """Read a history.jsonl written by :meth:`append`. A torn last line (a run cut short)
        is ignored once an operation was read before it; a file with none is not a history."""
        ops: list[Op] = []
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                ops.append(Op.from_dict(json.loads(line)))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                if number == len(lines) and ops:
                    break
                raise ValueError(f"{path}: line {number}: not a history operation "
                                 f"({type(exc).__name__}: {str(exc)[:120]})") from exc
        return cls(ops=ops)

    def completions(self) -> list[tuple[Op, Op | None]]:
        """Pair each client ``invoke`` with its completion (None when it never completed)."""
        pending: dict[int | str, Op] = {}
        pairs: list[tuple[Op, Op | None]] = []
        slots: dict[int, int] = {}
        for op in self.ops():
            if op.is_nemesis:
                continue
            if op.type == "invoke":
                pending[op.process] = op
                slots[op.index] = len(pairs)
                pairs.append((op, None))
            elif op.process in pending:
                start = pending.pop(op.process)
                pairs[slots[start.index]] = (start, op)
        return pairs


def record_final(history: History, f: str, value: Any, **extra: Any) -> Op:
    """Record a final read (e.g. ``record_final(h, "final-read", sorted(ids))``)."""
    return history.append(FINAL, "ok", f, value, **extra)
