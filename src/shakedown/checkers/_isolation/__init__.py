"""The isolation checker (after Jepsen's Elle): from a history of list-append or read/write
register transactions, infer the ww / wr / rw dependencies between transactions (``_list_append``,
``_rw_register``), add process and realtime order (``_graph``), decide which cycle families exist
and find the shortest example cycles (``_cycles``), name every anomaly (``_findings``), judge
them against a consistency model (``_models``) and print them as Elle does (``_render``)."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from shakedown.checkers._histories import HistoryLike
from shakedown.checkers._isolation._cycles import Search, search
from shakedown.checkers._isolation._findings import IMPLIES, Cycle, Finding, base_name
from shakedown.checkers._isolation._graph import add_process_edges, add_realtime_edges
from shakedown.checkers._isolation._list_append import ListAppend
from shakedown.checkers._isolation._models import MODELS, Model, ruled_out
from shakedown.checkers._isolation._models import model as find_model
from shakedown.checkers._isolation._render import cycle_to_dict, render_cycle, render_finding
from shakedown.checkers._isolation._rw_register import RwRegister
from shakedown.checkers._isolation._txns import MalformedHistory, Txn, kind_of, read_txns
from shakedown.checkers._result import Result, invalid, unknown, valid

__all__ = ["MODELS", "Model", "isolation"]


def isolation(
    history: HistoryLike,
    model: str = "serializable",
    *,
    examples: int = 3,
    f: str = "txn",
    writes_follow_reads: bool = True,
) -> Result:
    """Check the ``f`` transactions of ``history`` against a consistency model: one of
    ``read-committed``, ``snapshot-isolation``, ``repeatable-read``, ``serializable``,
    ``strict-serializable``.

    Invalid when an anomaly the model forbids is found; every anomaly found is listed, with
    up to ``examples`` cycles (or direct observations) each. Unknown when nothing committed
    or nothing was written. ``writes_follow_reads`` (registers only): a committed transaction
    that read a key then wrote it ordered the version it read before the one it wrote.
    """
    chosen = find_model(model)
    with _no_cyclic_gc():
        return _check(history, chosen, examples, f, writes_follow_reads)


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """The check allocates millions of small objects that form no reference cycles; the
    cyclic collector's repeated scans of them cost more than the check itself (2-3x at 10k
    transactions), so it is paused meanwhile and restored after."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _check(history: HistoryLike, chosen: Model, examples: int, f: str,
           writes_follow_reads: bool) -> Result:
    try:
        txns = read_txns(history, f)
        kind = kind_of(txns)
    except MalformedHistory as exc:
        return _malformed(str(exc), f)
    committed = sum(1 for t in txns if t.type == "ok")
    if kind is None or committed == 0:
        return unknown(f"no committed {f!r} transaction with a write: nothing to check "
                       f"({len(txns)} transactions, {committed} committed)", {"txns": len(txns)})
    try:
        inference: ListAppend | RwRegister = (
            ListAppend(txns) if kind == "list-append"
            else RwRegister(txns, writes_follow_reads=writes_follow_reads))
    except ValueError as exc:
        return _malformed(str(exc), f)
    order = chosen.family == "FO"
    if order:
        add_process_edges(inference.graph, txns)
        add_realtime_edges(inference.graph, txns)
    found = search(inference.graph, order=order, examples=examples)
    return _verdict(chosen, kind, txns, inference, found, examples)


def _malformed(problem: str, f: str) -> Result:
    return unknown(
        f"cannot check isolation: {problem}. Checked: the value of every {f!r} operation "
        "(a list of [\"append\", k, v] / [\"r\", k, list] or [\"w\", k, v] / [\"r\", k, v]). "
        "Fix: record transactions in Elle's shape with unique written values.")


def _verdict(chosen: Model, kind: str, txns: list[Txn], inference: ListAppend | RwRegister,
             found: Search, examples: int) -> Result:
    by_name: dict[str, list[Finding]] = {}
    for finding in inference.findings:
        by_name.setdefault(finding.name, []).append(finding)
    names = set(by_name) | set(found.cycles)
    forbidden = sorted(n for n in names if n in chosen.forbids)
    allowed = sorted(names - set(forbidden))
    rendered = _rendered(by_name, found.cycles, txns, inference, examples)
    counts = _counts(txns, by_name, found.cycles)
    details: dict[str, Any] = {
        "model": chosen.name,
        "model_note": chosen.note,
        "workload": kind,
        "forbids": list(chosen.forbids),
        "anomalies": sorted(names),
        "forbidden_found": forbidden,
        "implied": sorted({IMPLIES[base_name(n)] for n in names if base_name(n) in IMPLIES}),
        "ruled_out": ruled_out(names, found.exists),
        "examples": rendered,
        "cycles": {name: [cycle_to_dict(c, txns, inference.why) for c in items]
                   for name, items in found.cycles.items()},
        "graph": {**inference.graph.count(), "cyclic_components": found.components,
                  "largest_component": found.largest},
    }
    head = _headline(chosen, kind, txns, forbidden, allowed, found)
    body = [text for name in [*forbidden, *allowed] for text in rendered[name][:1]]
    explanation = "\n\n".join([head, *body])
    if forbidden or found.exists.get(chosen.family):
        return invalid(explanation, counts, **details)
    return valid(explanation, counts, **details)


def _rendered(by_name: dict[str, list[Finding]], cycles: dict[str, list[Cycle]], txns: list[Txn],
              inference: ListAppend | RwRegister, examples: int) -> dict[str, list[str]]:
    rendered = {name: [render_finding(f) for f in items[:examples]]
                for name, items in by_name.items()}
    for name, items in cycles.items():
        rendered[name] = [render_cycle(c, txns, inference.why) for c in items]
    return rendered


def _counts(txns: list[Txn], by_name: dict[str, list[Finding]],
            cycles: dict[str, list[Cycle]]) -> dict[str, int]:
    counts = {"txns": len(txns)}
    for outcome in ("ok", "fail", "info"):
        counts[outcome] = sum(1 for t in txns if t.type == outcome)
    counts |= {name: len(items) for name, items in by_name.items()}
    counts |= {name: len(items) for name, items in cycles.items()}
    return counts


def _headline(chosen: Model, kind: str, txns: list[Txn], forbidden: list[str],
              allowed: list[str], found: Search) -> str:
    ok = sum(1 for t in txns if t.type == "ok")
    seen = f"{len(txns)} {kind} transactions ({ok} committed)"
    parts = []
    if forbidden:
        parts.append(f"forbidden by {chosen.name}: {', '.join(forbidden)}")
    if allowed:
        parts.append(f"found but allowed by {chosen.name}: {', '.join(allowed)}")
    if not parts:
        return f"{seen}: no anomaly {chosen.name} forbids ({chosen.note})"
    return f"{seen}; " + "; ".join(parts) + "."

