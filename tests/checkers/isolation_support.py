"""Building transaction histories by hand for the isolation checker's tests: each transaction
is ``(process, outcome, micro-ops)`` with its reads filled in, recorded as an invocation
(reads unknown) and its completion, one after the other unless told to overlap."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shakedown.history import History

Txn = tuple[int, str, list[list[Any]]]


def invocation(ops: list[list[Any]]) -> list[list[Any]]:
    return [[f, k, None if f == "r" else v] for f, k, v in ops]


def serial(*txns: Txn) -> History:
    """Each transaction invoked and completed before the next one starts."""
    history = History()
    for process, outcome, ops in txns:
        history.append(process, "invoke", "txn", invocation(ops))
        history.append(process, outcome, "txn", ops if outcome == "ok" else invocation(ops))
    return history


def concurrent(*txns: Txn) -> History:
    """All transactions invoked, then all completed: no realtime order between them."""
    history = History()
    for process, _, ops in txns:
        history.append(process, "invoke", "txn", invocation(ops))
    for process, outcome, ops in txns:
        history.append(process, outcome, "txn", ops if outcome == "ok" else invocation(ops))
    return history


def txns(*ops: Sequence[list[Any]], process_base: int = 0) -> list[Txn]:
    """Committed transactions on distinct processes."""
    return [(process_base + n, "ok", list(o)) for n, o in enumerate(ops)]
