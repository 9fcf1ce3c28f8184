"""The single-leader checker: at no sampled moment may two members of a cluster both be
writable primaries (split brain). Samples come from role probes recorded in the history."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shakedown.checkers._result import Result, invalid, preview, unknown, valid
from shakedown.history import History, Op

PRIMARY_ROLES = frozenset({"primary", "leader", "master"})

RoleTuple = tuple[float, str, str, bool]  # (time, member, role, writable)
RoleSamples = History | Iterable[Op] | Iterable[RoleTuple]


@dataclass(frozen=True)
class _Sample:
    time: float
    writable_primaries: tuple[str, ...]


def single_leader(samples: RoleSamples, f: str = "roles") -> Result:
    """Check role samples for split brain.

    ``samples`` is a history (or ops) with ops ``f="roles"`` whose value maps member to role
    (``"primary" | "replica" | "unknown"``; a primary counts as writable) or to
    ``{"role": ..., "writable": bool}`` (a fenced, read-only primary is not writable); or an
    iterable of ``(time, member, role, writable)`` tuples, grouped by equal time. Invalid if a
    sample shows two or more writable primaries; unknown when there are no samples.
    """
    parsed = _parse(samples, f)
    if not parsed:
        return unknown("no role samples")
    split = [s for s in parsed if len(s.writable_primaries) > 1]
    counts = {
        "samples": len(parsed),
        "split_brain_samples": len(split),
        "no_primary_samples": sum(1 for s in parsed if not s.writable_primaries),
        "max_writable_primaries": max(len(s.writable_primaries) for s in parsed),
    }
    if split:
        shown = [f"{s.time:.3f}s: {', '.join(s.writable_primaries)}" for s in split]
        return invalid(
            f"two or more writable primaries at once in {len(split)} of "
            f"{len(parsed)} samples: {preview(shown, 5)}",
            counts,
            split_brain=[
                {"time": s.time, "members": list(s.writable_primaries)} for s in split[:10]
            ],
        )
    return valid(
        f"at most one writable primary in each of {len(parsed)} samples "
        f"({counts['no_primary_samples']} without any)",
        counts,
    )


def _parse(samples: RoleSamples, f: str) -> list[_Sample]:
    items: list[Any] = list(samples.ops() if isinstance(samples, History) else samples)
    ops = [item for item in items if isinstance(item, Op)]
    if len(ops) == len(items):
        return [_from_op(op) for op in ops if _is_role_sample(op, f)]
    return _from_tuples([item for item in items if not isinstance(item, Op)])


def _is_role_sample(op: Op, f: str) -> bool:
    return op.f == f and op.type in ("ok", "info") and isinstance(op.value, Mapping)


def _from_op(op: Op) -> _Sample:
    members = sorted(m for m, state in op.value.items() if _writable_primary(state))
    return _Sample(op.time, tuple(members))


def _writable_primary(state: Any) -> bool:
    if isinstance(state, Mapping):
        role = str(state.get("role", "")).lower()
        return role in PRIMARY_ROLES and bool(state.get("writable", True))
    return str(state).lower() in PRIMARY_ROLES


def _from_tuples(rows: list[Any]) -> list[_Sample]:
    by_time: dict[float, list[str]] = {}
    for time, member, role, writable in rows:
        primaries = by_time.setdefault(float(time), [])  # a sample without primary counts too
        if str(role).lower() in PRIMARY_ROLES and writable:
            primaries.append(str(member))
    return [_Sample(t, tuple(sorted(m))) for t, m in sorted(by_time.items())]
