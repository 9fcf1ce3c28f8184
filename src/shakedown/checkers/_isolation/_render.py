"""Text of the isolation checker's findings, in the manner of Elle: for a cycle, the
transactions named T1, T2, ... with their micro-operations, each edge with its kind and the
one observation that proves it, and a closing line saying why no order fits; for a direct
anomaly, the line saying what was seen."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from shakedown.checkers._isolation._findings import Cycle, Finding, Step, describe
from shakedown.checkers._isolation._txns import Txn

Explain = Callable[[int, int, str], str]
READ_SHOWN = 6


def render_cycle(cycle: Cycle, txns: list[Txn], explain: Explain) -> str:
    names: dict[int, str] = {}
    for step in cycle.steps:
        names.setdefault(step.a, f"T{len(names) + 1}")
    lines = [f"{cycle.name}: {describe(cycle.name)}", "  Let:"]
    lines += [f"    {name} = {_txn(txns[node])}" for node, name in names.items()]
    lines.append("  Then:")
    for step in cycle.steps:
        lines.append(f"    {names[step.a]} < {names[step.b]} ({step.kind}): "
                     f"{_why(step, txns, explain, names)}")
    order = " < ".join(names[s.a] for s in cycle.steps) + f" < {names[cycle.steps[0].a]}"
    lines.append(f"  A cycle, {order}: no order of these transactions explains what they saw.")
    return "\n".join(lines)


def render_finding(finding: Finding) -> str:
    return f"{finding.name}: {finding.why}"


def cycle_to_dict(cycle: Cycle, txns: list[Txn], explain: Explain) -> dict[str, Any]:
    """A cycle as data (for the report and JSON): its transactions and typed steps."""
    names: dict[int, str] = {}
    for step in cycle.steps:
        names.setdefault(step.a, f"T{len(names) + 1}")
    return {
        "name": cycle.name,
        "txns": {name: _txn_dict(txns[node]) for node, name in names.items()},
        "steps": [{"from": names[s.a], "to": names[s.b], "kind": s.kind,
                   "why": _why(s, txns, explain, names)} for s in cycle.steps],
        "text": render_cycle(cycle, txns, explain),
    }


def _why(step: Step, txns: list[Txn], explain: Explain, names: dict[int, str]) -> str:
    a, b = txns[step.a], txns[step.b]
    if step.kind == "process":
        text = f"{{b}} is process {b.process}'s next transaction after {{a}}"
    elif step.kind == "realtime":
        text = (f"{{a}} completed (index {a.done}) before {{b}} was invoked "
                f"(index {b.index})")
    else:
        text = explain(step.a, step.b, step.kind) or f"{step.kind} dependency"
    return text.replace("{a}", names[step.a]).replace("{b}", names[step.b])


def _txn(txn: Txn) -> str:
    ops = json.dumps([_op(op) for op in txn.raw], default=str, separators=(", ", ": "))
    return f"index {txn.index}, process {txn.process}, {txn.type}: {ops}"


def _txn_dict(txn: Txn) -> dict[str, Any]:
    return {"index": txn.index, "process": txn.process, "type": txn.type,
            "value": [_op(op) for op in txn.raw]}


def _op(op: Any) -> Any:
    """A micro-op with a long read shortened to its last elements."""
    f, key, value = op
    if f == "r" and isinstance(value, list | tuple) and len(value) > READ_SHOWN:
        return [f, key, ["...", *value[-READ_SHOWN:]]]
    return [f, key, value]
