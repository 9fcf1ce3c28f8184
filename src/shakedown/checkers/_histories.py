"""Small helpers shared by checkers to read histories: accept a ``History`` or any iterable of
``Op``, pair invocations with completions, and turn JSON values into hashable keys."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from shakedown.history import History, Op

HistoryLike = History | Iterable[Op]


def as_history(history: HistoryLike) -> History:
    return history if isinstance(history, History) else History(ops=history)


def outcomes(history: HistoryLike, f: str) -> list[tuple[Op, str]]:
    """Each client invocation of ``f`` with its outcome: ``ok``, ``fail`` or ``info`` (an
    invocation that never completed is ``info``: its effect is unknown)."""
    return [
        (invoke, completion.type if completion is not None else "info")
        for invoke, completion in as_history(history).completions()
        if invoke.f == f
    ]


def hashable(value: Any) -> Any:
    """A hashable stand-in for a JSON value (lists become tuples, dicts sorted item tuples), so
    values that went through a JSONL round trip compare equal to the originals."""
    if isinstance(value, list | tuple):
        return tuple(hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), hashable(v)) for k, v in value.items()))
    return value
