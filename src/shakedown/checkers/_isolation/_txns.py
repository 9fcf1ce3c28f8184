"""Transactions read out of a history for the isolation checker: each client ``txn`` invocation
paired with its completion, its micro-operations in Elle's shape (``["append", k, v]``,
``["r", k, [..] | None]``, ``["w", k, v]``), its outcome and its place in the history, plus
the checks of that shape (a malformed history is reported, never guessed at)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from shakedown.checkers._histories import HistoryLike, as_history, hashable
from shakedown.history import FINAL

MICRO_OPS = ("append", "r", "w")
_INT = {int}


class MalformedHistory(ValueError):
    """A ``txn`` operation whose value is not a list of micro-operations in Elle's shape."""


@dataclass(slots=True)
class MicroOp:
    """One micro-operation: ``f`` is append / r / w; ``value`` the appended or written value,
    or what the read returned (None when unknown: an invocation, or an incomplete txn)."""

    f: str
    key: Any
    value: Any


@dataclass(slots=True)
class Txn:
    """A transaction: ``id`` is its node number in the dependency graph (order of invocation),
    ``index`` the history index of its invocation, ``done`` that of its completion (None if it
    never completed), ``type`` ok / fail / info."""

    id: int
    index: int
    done: int | None
    process: int | str
    type: str
    ops: list[MicroOp]
    raw: Any

    @property
    def name(self) -> str:
        return f"index {self.index}"


def read_txns(history: HistoryLike, f: str = "txn") -> list[Txn]:
    """Every client invocation of ``f`` as a ``Txn``; the completion's value is used for ``ok``
    (reads filled in), the invocation's otherwise (reads unknown)."""
    txns: list[Txn] = []
    for invoke, completion in as_history(history).completions():
        if invoke.f != f or invoke.process == FINAL:
            continue
        outcome = completion.type if completion is not None else "info"
        raw = completion.value if completion is not None and outcome == "ok" else invoke.value
        ops = _micro_ops(raw, invoke.index, filled=outcome == "ok")
        done = completion.index if completion is not None else None
        txns.append(Txn(len(txns), invoke.index, done, invoke.process, outcome, ops, raw))
    return txns


def _micro_ops(raw: Any, index: int, *, filled: bool) -> list[MicroOp]:
    if not isinstance(raw, list | tuple):
        raise MalformedHistory(f"txn at index {index}: value {raw!r} is not a list of micro-ops")
    ops = []
    for op in raw:
        if not (isinstance(op, list | tuple) and len(op) == 3 and op[0] in MICRO_OPS):
            raise MalformedHistory(
                f"txn at index {index}: micro-op {op!r} is not [f, key, value] with f one of "
                f"{', '.join(MICRO_OPS)}"
            )
        f, key, value = op
        if f == "r" and filled and value is not None and not _read_shape_ok(value):
            raise MalformedHistory(f"txn at index {index}: read {op!r} returned {value!r}")
        key = key if type(key) is int else hashable(key)
        ops.append(MicroOp(f, key, _read_value(f, value) if filled or f != "r" else None))
    return ops


def _read_shape_ok(value: Any) -> bool:
    return not isinstance(value, dict)


def _read_value(f: str, value: Any) -> Any:
    """A read of a list stays a list (order matters); register values are made hashable."""
    if f == "r" and isinstance(value, list | tuple):
        if set(map(type, value)) <= _INT:  # the usual case, decided at C speed
            return list(value)
        return [hashable(v) for v in value]
    return value if type(value) is int else hashable(value)


def kind_of(txns: Iterable[Txn]) -> str | None:
    """``"list-append"``, ``"rw-register"``, or None when there is no write at all; a history
    mixing appends and register writes is malformed."""
    fs = {op.f for txn in txns for op in txn.ops}
    if "append" in fs and "w" in fs:
        raise MalformedHistory(
            "the history mixes list appends and register writes: check each workload's "
            "history on its own"
        )
    if "append" in fs:
        return "list-append"
    if "w" in fs:
        return "rw-register"
    return None
