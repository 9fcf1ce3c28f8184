"""The single-leader checker: at no sampled moment may two members of a cluster both be
writable primaries (split brain). Samples come from role probes recorded in the history. A
sample whose members carry a ``group`` (Patroni's Citus groups: one cluster each) is checked
per group: one writable primary in each group is right, two in one group is split brain."""

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
    split: tuple[str, ...] = ()
    """The writable primaries of every group that has more than one (split brain)."""
    groups: int = 1


def single_leader(samples: RoleSamples, f: str = "roles") -> Result:
    """Check role samples for split brain.

    ``samples`` is a history (or ops) with ops ``f="roles"`` whose value maps member to role
    (``"primary" | "replica" | "unknown"``; a primary counts as writable) or to
    ``{"role": ..., "writable": bool}`` (a fenced, read-only primary is not writable), with an
    optional ``"group"`` (members of different groups are different clusters); or an
    iterable of ``(time, member, role, writable)`` tuples, grouped by equal time. Invalid if a
    sample shows two or more writable primaries in one group; unknown when there are no
    samples. ``no_primary_samples`` counts samples in which some group had no primary.
    """
    parsed = _parse(samples, f)
    if not parsed:
        return unknown("no role samples")
    split = [s for s in parsed if s.split]
    counts = {
        "samples": len(parsed),
        "split_brain_samples": len(split),
        "no_primary_samples": sum(1 for s in parsed if len(s.writable_primaries) < s.groups
                                  and not s.split),
        "max_writable_primaries": max(len(s.writable_primaries) for s in parsed),
    }
    if split:
        shown = [f"{s.time:.3f}s: {', '.join(s.split)}" for s in split]
        return invalid(
            f"two or more writable primaries at once in {len(split)} of "
            f"{len(parsed)} samples: {preview(shown, 5)}",
            counts,
            split_brain=[{"time": s.time, "members": list(s.split)} for s in split[:10]],
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
    by_group: dict[str, list[str]] = {}
    for member, state in op.value.items():
        primaries = by_group.setdefault(_group(state), [])
        if _writable_primary(state):
            primaries.append(member)
    members = sorted(m for group in by_group.values() for m in group)
    split = sorted(m for group in by_group.values() if len(group) > 1 for m in group)
    return _Sample(op.time, tuple(members), tuple(split), len(by_group))


def _group(state: Any) -> str:
    return str(state.get("group", "")) if isinstance(state, Mapping) else ""


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
    return [_Sample(t, tuple(sorted(m)), tuple(sorted(m)) if len(m) > 1 else ())
            for t, m in sorted(by_time.items())]
