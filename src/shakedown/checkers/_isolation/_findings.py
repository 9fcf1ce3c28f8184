"""What the isolation checker reports: an anomaly seen directly in the data (an aborted read,
a duplicate element, an inconsistent read inside one transaction...) or a cycle of
dependencies between transactions, each with the transactions involved and why, plus the
descriptions of every anomaly type."""

from __future__ import annotations

from dataclasses import dataclass, field

# One line per anomaly type: what it means, in the words a report reader needs.
DESCRIPTIONS: dict[str, str] = {
    "G0": "write cycle (dirty write): each transaction's write is ordered after the next's",
    "G1a": "aborted read: a committed transaction saw a write of a transaction that failed",
    "G1b": "intermediate read: a transaction saw a version another one overwrote itself",
    "G1c": "circular information flow: the transactions each saw or overwrote the next's "
    "write (ww/wr edges only)",
    "G-single": "read skew: a cycle with exactly one anti-dependency (a transaction missed "
    "one write it should have seen)",
    "G-nonadjacent": "a cycle of several anti-dependencies, no two adjacent: forbidden by "
    "snapshot isolation",
    "G2-item": "write skew: a cycle with adjacent anti-dependencies (each transaction missed "
    "the other's write)",
    "lost-update": "several committed transactions read the same version of a key and each "
    "wrote that key",
    "internal": "a read inside a transaction contradicts the transaction's own earlier reads "
    "and writes",
    "duplicate-elements": "a read returned a list holding the same element more than once",
    "incompatible-order": "two reads of a key disagree on the order of its elements (neither "
    "is a prefix of the other)",
    "garbage-read": "a read returned a value no transaction wrote",
    "cyclic-versions": "the version order inferred for a key contradicts itself",
}
ORDER_SUFFIXES = ("-process", "-realtime")
# Umbrella classes (Adya): G1 = G1a | G1b | G1c; G2 = any cycle with anti-dependencies.
IMPLIES: dict[str, str] = {
    "G1a": "G1",
    "G1b": "G1",
    "G1c": "G1",
    "G-single": "G2",
    "G-nonadjacent": "G2",
    "G2-item": "G2",
}


def describe(name: str) -> str:
    for suffix in ORDER_SUFFIXES:
        if name.endswith(suffix):
            base = name[: -len(suffix)]
            order = suffix[1:]
            return f"{DESCRIPTIONS.get(base, base)}, counting {order} order as a dependency"
    return DESCRIPTIONS.get(name, name)


def base_name(name: str) -> str:
    for suffix in ORDER_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


@dataclass(frozen=True)
class Finding:
    """A direct anomaly: the transactions involved (by id) and one line saying what was seen."""

    name: str
    txns: tuple[int, ...]
    why: str


@dataclass(frozen=True)
class Step:
    """One edge of a cycle: ``a -kind-> b`` and why that dependency holds."""

    a: int
    b: int
    kind: str
    why: str = ""


@dataclass(frozen=True)
class Cycle:
    """A cycle of dependencies, named by its edges (``classify``)."""

    name: str
    steps: tuple[Step, ...]
    nodes: frozenset[int] = field(compare=False)


def classify(kinds: list[str]) -> str:
    """The anomaly a cycle with these edge kinds (in order, cyclic) exhibits."""
    rw = [i for i, kind in enumerate(kinds) if kind == "rw"]
    suffix = ""
    if "realtime" in kinds:
        suffix = "-realtime"
    elif "process" in kinds:
        suffix = "-process"
    if not rw:
        base = "G1c" if "wr" in kinds else "G0"
    elif len(rw) == 1:
        base = "G-single"
    else:
        size = len(kinds)
        adjacent = any((i + 1) % size in set(rw) for i in rw)
        base = "G2-item" if adjacent else "G-nonadjacent"
    return base + suffix
